-- One-time codes that confirm the riskiest changes (owner changes, restoring a disabled
-- account). Only the SHA-256 of a code is stored; a code is single use and expires.
CREATE TABLE confirmations (
    id           BIGSERIAL PRIMARY KEY,
    request_id   BIGINT NOT NULL REFERENCES requests(id),
    account      TEXT    NOT NULL,
    code_sha256  TEXT    NOT NULL UNIQUE,
    expires_at   BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    used_at      BIGINT,
    void_at      BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX confirmations_request ON confirmations(request_id);

-- The daily cap on answers per mailbox counts recent outbox rows per address.
CREATE INDEX outbox_to_created ON outbox(to_address, created_at);
