-- postroom schema, PostgreSQL flavour. Times are Unix milliseconds (UTC) so that the same queries
-- and the same Rust types serve SQLite and PostgreSQL (sqlx's Any driver has no time types).

CREATE TABLE organisations (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE mailboxes (
    id               BIGSERIAL PRIMARY KEY,
    organisation_id  BIGINT NOT NULL REFERENCES organisations(id),
    address          TEXT    NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL
);
CREATE INDEX mailboxes_organisation ON mailboxes(organisation_id);

CREATE TABLE accounts (
    id                 BIGSERIAL PRIMARY KEY,
    organisation_id    BIGINT NOT NULL REFERENCES organisations(id),
    address            TEXT    NOT NULL UNIQUE,
    name               TEXT    NOT NULL DEFAULT '',
    job_title          TEXT,
    status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked', 'disabled')),
    password_hash      TEXT,
    must_change        BIGINT NOT NULL DEFAULT 0,
    status_changed_at  BIGINT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX accounts_organisation ON accounts(organisation_id);
CREATE INDEX accounts_status_changed ON accounts(status_changed_at);

CREATE TABLE memberships (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id),
    account_id  BIGINT NOT NULL REFERENCES accounts(id),
    role        TEXT    NOT NULL CHECK (role IN ('member', 'owner')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, account_id)
);
CREATE INDEX memberships_account ON memberships(account_id);

-- Every message postroom has read, raw, so that any decision can be re-examined.
CREATE TABLE messages (
    id           BIGSERIAL PRIMARY KEY,
    message_id   TEXT,
    sha256       TEXT    NOT NULL UNIQUE,
    raw          BYTEA    NOT NULL,
    size         BIGINT NOT NULL,
    from_address TEXT,
    subject      TEXT    NOT NULL DEFAULT '',
    source       TEXT    NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;

CREATE TABLE requests (
    id               BIGSERIAL PRIMARY KEY,
    reference        TEXT    UNIQUE,
    message_id       BIGINT NOT NULL REFERENCES messages(id),
    kind             TEXT    NOT NULL,
    outcome          TEXT    NOT NULL,
    reason           TEXT,
    mailbox          TEXT,
    requester        TEXT,
    target           TEXT,
    fields           TEXT    NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX requests_outcome_created ON requests(outcome, created_at);
CREATE INDEX requests_mailbox ON requests(mailbox);
CREATE INDEX requests_target ON requests(target);
CREATE INDEX requests_created ON requests(created_at);
CREATE INDEX requests_message ON requests(message_id);

-- Later mail in a request's thread, and staff notes.
CREATE TABLE comments (
    id          BIGSERIAL PRIMARY KEY,
    request_id  BIGINT NOT NULL REFERENCES requests(id),
    message_id  BIGINT REFERENCES messages(id),
    author      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX comments_request ON comments(request_id);

-- Append-only: nothing updates or deletes a row here.
CREATE TABLE audit_events (
    id            BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor         TEXT    NOT NULL,
    on_behalf_of  TEXT,
    action        TEXT    NOT NULL,
    subject       TEXT,
    detail        TEXT    NOT NULL DEFAULT '{}',
    request_id    BIGINT REFERENCES requests(id),
    message_id    BIGINT REFERENCES messages(id)
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_subject ON audit_events(subject);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Replies waiting for the SMTP sender. `secret` is text to blank out of `body` once sent
-- (a temporary password is shown once, in the reply, and kept nowhere else).
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    request_id       BIGINT REFERENCES requests(id),
    to_address       TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    message_id       TEXT    NOT NULL UNIQUE,
    in_reply_to      TEXT,
    references_ids   TEXT,
    secret           TEXT,
    status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_request ON outbox(request_id);

-- Where the IMAP watcher is in each folder (RFC 3501 §2.3.1.1: UIDs are valid only with the
-- same UIDVALIDITY).
CREATE TABLE imap_state (
    mailbox      TEXT    NOT NULL,
    folder       TEXT    NOT NULL,
    uidvalidity  BIGINT NOT NULL,
    next_uid     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
