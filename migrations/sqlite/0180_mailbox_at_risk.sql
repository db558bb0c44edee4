-- The at-risk test in a column of its own (issue 18), as in PostgreSQL's migration 0180, where
-- it lets an update of a mailbox's counts leave the mailbox's indexes alone (a HOT update). The
-- at-risk view's query is shared by both databases and names `at_risk`, which the partial index
-- names too (SQLite uses a partial index only when the query's WHERE contains the index's
-- condition). SQLite updates in place and has no HOT; a virtual column costs nothing to store.
ALTER TABLE mailboxes ADD COLUMN at_risk INTEGER
    GENERATED ALWAYS AS (members_active + owners_active < 2 OR owners_active = 0) VIRTUAL;
DROP INDEX mailboxes_at_risk;
CREATE INDEX mailboxes_at_risk ON mailboxes(organisation_id, address) WHERE at_risk;

-- 0001's index on organisation_id alone: 0150's (organisation_id, address) serves every query
-- by organisation, and each index is one more B-tree written for every mailbox inserted.
DROP INDEX mailboxes_organisation;
