-- An account's status changes without touching its indexes (issue 18). Unlocking, locking,
-- disabling or re-enabling an account writes `status` and `status_changed_at`, and both were
-- indexed: `accounts_organisation_status` (0150, for an organisation's counts) and
-- `accounts_status_changed` (0001, for the directory page's recent changes and for retention).
-- So no status change could be a heap-only (HOT) update: each wrote a new entry in every
-- index of accounts, at national scale a random leaf of each, most of them written to the WAL
-- whole as the first change of that page after a checkpoint. `pg_waldump` of a full-size run
-- put 6.2 of the 16.8 whole pages an unlock writes on this one update
-- (https://www.postgresql.org/docs/15/storage-hot.html: an update is HOT only when no column
-- an index refers to changes value, and the page has room for the new version).
--
-- What the two indexes answered now comes from elsewhere:
-- * an organisation's accounts that are not disabled (the new-account limit) from a count kept
--   on the organisation beside 0161's, `disabled_account_count`;
-- * the directory page's recent status changes from `account_status_changes`, an append-only
--   log a row trigger writes when `status_changed_at` moves: its pages and its index's leaf
--   are the newest ones, already in the WAL since the checkpoint, so a change adds little;
-- * retention's disabled accounts from a scan of accounts, once a pass (a background job; a
--   few hundred milliseconds at 1.5 million accounts).
-- Queries by organisation use 0170's name-key indexes, which lead with organisation_id.

-- Room for the new row version on its page: a tenth of each page is left free (for pages
-- written from now on; an existing directory gains it as its pages are rewritten).
ALTER TABLE accounts SET (fillfactor = 90);

ALTER TABLE organisations ADD COLUMN disabled_account_count BIGINT NOT NULL DEFAULT 0;
UPDATE organisations o SET disabled_account_count =
    (SELECT COUNT(*) FROM accounts a WHERE a.organisation_id = o.id AND a.status = 'disabled');

-- 0161's statement-level counting, with the disabled accounts counted too.
CREATE OR REPLACE FUNCTION accounts_organisation_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE organisations g SET account_count = g.account_count + d.n,
            active_account_count = g.active_account_count + d.a,
            disabled_account_count = g.disabled_account_count + d.x
        FROM (SELECT organisation_id, COUNT(*) AS n,
                     COUNT(*) FILTER (WHERE status = 'active') AS a,
                     COUNT(*) FILTER (WHERE status = 'disabled') AS x
              FROM new_rows GROUP BY organisation_id) d
        WHERE g.id = d.organisation_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE organisations g SET account_count = g.account_count - d.n,
            active_account_count = g.active_account_count - d.a,
            disabled_account_count = g.disabled_account_count - d.x
        FROM (SELECT organisation_id, COUNT(*) AS n,
                     COUNT(*) FILTER (WHERE status = 'active') AS a,
                     COUNT(*) FILTER (WHERE status = 'disabled') AS x
              FROM old_rows GROUP BY organisation_id) d
        WHERE g.id = d.organisation_id;
    ELSE
        UPDATE organisations g SET account_count = g.account_count + d.n,
            active_account_count = g.active_account_count + d.a,
            disabled_account_count = g.disabled_account_count + d.x
        FROM (SELECT organisation_id, SUM(n) AS n, SUM(a) AS a, SUM(x) AS x
              FROM (SELECT organisation_id, -1 AS n,
                           -(CASE WHEN status = 'active' THEN 1 ELSE 0 END) AS a,
                           -(CASE WHEN status = 'disabled' THEN 1 ELSE 0 END) AS x
                    FROM old_rows
                    UNION ALL
                    SELECT organisation_id, 1,
                           CASE WHEN status = 'active' THEN 1 ELSE 0 END,
                           CASE WHEN status = 'disabled' THEN 1 ELSE 0 END
                    FROM new_rows) y
              GROUP BY organisation_id
              HAVING SUM(n) <> 0 OR SUM(a) <> 0 OR SUM(x) <> 0) d
        WHERE g.id = d.organisation_id;
    END IF;
    RETURN NULL;
END $$;

-- Every move of an account's `status_changed_at`, newest last. No foreign key: retention
-- deletes accounts, and a key would make each delete search this table; the page's query joins
-- accounts and so skips rows of accounts that are gone, and retention prunes old rows.
CREATE TABLE account_status_changes (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL,
    changed_at  BIGINT NOT NULL
);
CREATE INDEX account_status_changes_at ON account_status_changes(changed_at, id);
INSERT INTO account_status_changes (account_id, changed_at)
    SELECT id, status_changed_at FROM accounts WHERE status_changed_at > created_at
    ORDER BY status_changed_at, id;

-- A row trigger whose WHEN PostgreSQL tests without calling the function: only the rows whose
-- time moved cost a call.
CREATE FUNCTION account_status_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_status_changes (account_id, changed_at)
        VALUES (NEW.id, NEW.status_changed_at);
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_status_logged AFTER UPDATE OF status_changed_at ON accounts
    FOR EACH ROW WHEN (OLD.status_changed_at IS DISTINCT FROM NEW.status_changed_at)
    EXECUTE FUNCTION account_status_logged();

DROP INDEX accounts_status_changed;
DROP INDEX accounts_organisation_status;
