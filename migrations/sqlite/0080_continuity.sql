-- Continuity reminders (issue 16): one row per shared mailbox that has been at risk. An open
-- episode has fixed_at NULL; reminders go at most once per `[continuity] remind_every`.
CREATE TABLE continuity_reminders (
    mailbox_id    INTEGER PRIMARY KEY REFERENCES mailboxes(id),
    since         INTEGER NOT NULL,
    risks         TEXT    NOT NULL,
    sent_count    INTEGER NOT NULL DEFAULT 0,
    last_sent_at  INTEGER,
    fixed_at      INTEGER
);
