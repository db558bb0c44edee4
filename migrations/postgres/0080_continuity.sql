-- Continuity reminders (issue 16): one row per shared mailbox that has been at risk. An open
-- episode has fixed_at NULL; reminders go at most once per `[continuity] remind_every`.
CREATE TABLE continuity_reminders (
    mailbox_id    BIGINT PRIMARY KEY REFERENCES mailboxes(id),
    since         BIGINT  NOT NULL,
    risks         TEXT    NOT NULL,
    sent_count    BIGINT  NOT NULL DEFAULT 0,
    last_sent_at  BIGINT,
    fixed_at      BIGINT
);
