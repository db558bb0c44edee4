-- The job queue (issue 14): work done after a transaction commits, away from it — pushing a
-- change to a directory, for one. A job is written in the same transaction as the decision
-- that makes it, then claimed with a lease (claimed_until, by the database's clock), tried,
-- retried with backoff, and finished (done) or given up (failed, kept for staff).
-- The payload names things by address, not by database id: it reads the same after a
-- restore, and the audit trail can quote it.
CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    request_id       BIGINT REFERENCES requests(id),
    status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    last_error       TEXT,
    result           TEXT,
    created_at       BIGINT NOT NULL,
    retried_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX jobs_due ON jobs(status, kind, next_attempt_at);
CREATE INDEX jobs_request ON jobs(request_id);

-- A reply may wait for a job: "Done" is sent only once the change it reports is done.
ALTER TABLE outbox ADD COLUMN after_job BIGINT REFERENCES jobs(id);
