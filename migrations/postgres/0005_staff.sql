-- The staff web page (PostgreSQL flavour): who may sign in, their sessions, and failed sign-ins.

-- Helpdesk staff. `name` is what the audit trail shows as `staff:NAME`; only the Argon2id
-- hash of the password is kept.
CREATE TABLE staff (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    role           TEXT    NOT NULL CHECK (role IN ('agent', 'admin')),
    password_hash  TEXT    NOT NULL,
    disabled       BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

-- One row per signed-in browser. Only the SHA-256 of the cookie's token is stored, so a copy
-- of the database does not sign anyone in.
CREATE TABLE staff_sessions (
    token_sha256  TEXT    PRIMARY KEY,
    staff_id      BIGINT  NOT NULL REFERENCES staff(id),
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    ip            TEXT
);
CREATE INDEX staff_sessions_staff ON staff_sessions(staff_id);
CREATE INDEX staff_sessions_expires ON staff_sessions(expires_at);

-- Failed sign-ins, counted per name and per client address over a sliding window.
CREATE TABLE staff_login_failures (
    id    BIGSERIAL PRIMARY KEY,
    name  TEXT    NOT NULL,
    ip    TEXT    NOT NULL,
    at    BIGINT  NOT NULL
);
CREATE INDEX staff_login_failures_name ON staff_login_failures(name, at);
CREATE INDEX staff_login_failures_ip ON staff_login_failures(ip, at);

-- What the staff pages filter and sort on (checked with EXPLAIN QUERY PLAN on 100,000
-- requests): the review queue walks one outcome in id order, the request search looks up the
-- requester and the kind, a request's story reads its audit events.
CREATE INDEX requests_outcome_id ON requests(outcome, id);
CREATE INDEX requests_requester ON requests(requester);
CREATE INDEX requests_kind_id ON requests(kind, id);
CREATE INDEX audit_events_request ON audit_events(request_id);
CREATE INDEX audit_events_actor ON audit_events(actor, id);
CREATE INDEX audit_events_action ON audit_events(action, id);
