-- Ages against a target (issue 17): a request that passed its kind's `[queue] targets` is
-- notified to `[queue] notify` once. The row is written in the transaction that queues the
-- notice in the outbox, and its key makes a second pass (or a second instance) skip it.
CREATE TABLE target_notices (
    request_id   INTEGER PRIMARY KEY REFERENCES requests(id),
    notified_at  INTEGER NOT NULL
);
