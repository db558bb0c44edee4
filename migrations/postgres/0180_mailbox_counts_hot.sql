-- A mailbox's counts change without touching its indexes (issue 18). Every status change of an
-- account updates the counts of each mailbox it is in (0160, 0170), and the at-risk index named
-- the counts in its WHERE, so PostgreSQL could never make that update a heap-only (HOT) update:
-- each one wrote a new entry in every index of mailboxes, at national scale a random leaf of
-- each, most of them written to the WAL whole as the first change after a checkpoint
-- (https://www.postgresql.org/docs/15/storage-hot.html: an update is HOT only when no column
-- an index refers to, in its key or its WHERE, changes value, and the page has room).
--
-- The test now sits in a stored column of its own, `at_risk`, which the index names instead of
-- the counts: an update that leaves a mailbox as at risk as it was changes no indexed value.
-- The at-risk view's query names `at_risk` too (the planner matches a partial index by its
-- WHERE); `MailboxSummary::at_risk` says the same in Rust.
--
-- Room for the new row version on its page: a tenth of each page is left free (for pages
-- written from now on, and for the rewrite the ADD COLUMN below makes).
ALTER TABLE mailboxes SET (fillfactor = 90);
ALTER TABLE mailboxes ADD COLUMN at_risk BOOLEAN
    GENERATED ALWAYS AS (members_active + owners_active < 2 OR owners_active = 0) STORED;
DROP INDEX mailboxes_at_risk;
CREATE INDEX mailboxes_at_risk ON mailboxes(organisation_id, address) WHERE at_risk;

-- 0001's index on organisation_id alone: 0150's (organisation_id, address) serves every query
-- by organisation (and the foreign key's checks), and each index is one more B-tree written
-- for every mailbox inserted and every update that is not HOT.
DROP INDEX mailboxes_organisation;
