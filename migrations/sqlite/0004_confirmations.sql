-- One-time codes that confirm the riskiest changes (owner changes, restoring a disabled
-- account). Only the SHA-256 of a code is stored; a code is single use and expires.
CREATE TABLE confirmations (
    id           INTEGER PRIMARY KEY,
    request_id   INTEGER NOT NULL REFERENCES requests(id),
    account      TEXT    NOT NULL,
    code_sha256  TEXT    NOT NULL UNIQUE,
    expires_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    used_at      INTEGER,
    void_at      INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX confirmations_request ON confirmations(request_id);

-- The daily cap on answers per mailbox counts recent outbox rows per address.
CREATE INDEX outbox_to_created ON outbox(to_address, created_at);
