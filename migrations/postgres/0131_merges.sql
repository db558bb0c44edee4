-- Merged duplicates (issue 17): a site sent the same request twice; staff merged the second
-- (`request_id`, now outcome `duplicate`, reason `merged`) into the first (`into_request_id`),
-- which carries the one answer. One row per merged request.
CREATE TABLE merges (
    request_id       BIGINT PRIMARY KEY REFERENCES requests(id),
    into_request_id  BIGINT NOT NULL REFERENCES requests(id),
    merged_by        TEXT    NOT NULL,
    merged_at        BIGINT NOT NULL
);
CREATE INDEX merges_into ON merges(into_request_id);
