-- Claims (issue 17): who on the helpdesk team has taken a request in the queue. One row per
-- claimed request; releasing deletes it (the audit trail keeps the story).
CREATE TABLE claims (
    request_id  BIGINT PRIMARY KEY REFERENCES requests(id),
    staff       TEXT    NOT NULL,
    claimed_by  TEXT    NOT NULL,
    claimed_at  BIGINT NOT NULL
);
CREATE INDEX claims_staff ON claims(staff);
