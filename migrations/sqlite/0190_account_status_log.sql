-- As PostgreSQL's migration 0190 (issue 18), where it lets an account's status change leave
-- the account's indexes alone (a HOT update): no index names `status` or `status_changed_at`.
-- SQLite updates in place and has no HOT, but the queries are shared, and two indexes fewer
-- are two B-trees fewer to write for every account imported and every status change.
-- * An organisation's accounts that are not disabled (the new-account limit): a count kept on
--   the organisation beside 0161's, `disabled_account_count`.
-- * The directory page's recent status changes: `account_status_changes`, an append-only log
--   a trigger writes when `status_changed_at` moves (no foreign key: retention deletes
--   accounts; the page's query joins accounts, and retention prunes old rows).
-- * Retention's disabled accounts: a scan of accounts, once a pass.
ALTER TABLE organisations ADD COLUMN disabled_account_count INTEGER NOT NULL DEFAULT 0;
UPDATE organisations SET disabled_account_count = (SELECT COUNT(*) FROM accounts a
    WHERE a.organisation_id = organisations.id AND a.status = 'disabled');

DROP TRIGGER accounts_organisation_counted_insert;
DROP TRIGGER accounts_organisation_counted_delete;
DROP TRIGGER accounts_organisation_counted_update;

CREATE TRIGGER accounts_organisation_counted_insert AFTER INSERT ON accounts
BEGIN
    UPDATE organisations SET account_count = account_count + 1,
        active_account_count = active_account_count + (NEW.status = 'active'),
        disabled_account_count = disabled_account_count + (NEW.status = 'disabled')
    WHERE id = NEW.organisation_id;
END;

CREATE TRIGGER accounts_organisation_counted_delete AFTER DELETE ON accounts
BEGIN
    UPDATE organisations SET account_count = account_count - 1,
        active_account_count = active_account_count - (OLD.status = 'active'),
        disabled_account_count = disabled_account_count - (OLD.status = 'disabled')
    WHERE id = OLD.organisation_id;
END;

-- A new status or a new organisation: uncounted as it was, counted as it is.
CREATE TRIGGER accounts_organisation_counted_update AFTER UPDATE OF status, organisation_id ON accounts
WHEN OLD.organisation_id IS NOT NEW.organisation_id
  OR (OLD.status = 'active') IS NOT (NEW.status = 'active')
  OR (OLD.status = 'disabled') IS NOT (NEW.status = 'disabled')
BEGIN
    UPDATE organisations SET account_count = account_count - 1,
        active_account_count = active_account_count - (OLD.status = 'active'),
        disabled_account_count = disabled_account_count - (OLD.status = 'disabled')
    WHERE id = OLD.organisation_id;
    UPDATE organisations SET account_count = account_count + 1,
        active_account_count = active_account_count + (NEW.status = 'active'),
        disabled_account_count = disabled_account_count + (NEW.status = 'disabled')
    WHERE id = NEW.organisation_id;
END;

CREATE TABLE account_status_changes (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL
);
CREATE INDEX account_status_changes_at ON account_status_changes(changed_at, id);
INSERT INTO account_status_changes (account_id, changed_at)
    SELECT id, status_changed_at FROM accounts WHERE status_changed_at > created_at
    ORDER BY status_changed_at, id;

CREATE TRIGGER accounts_status_logged AFTER UPDATE OF status_changed_at ON accounts
WHEN OLD.status_changed_at IS NOT NEW.status_changed_at
BEGIN
    INSERT INTO account_status_changes (account_id, changed_at)
        VALUES (NEW.id, NEW.status_changed_at);
END;

DROP INDEX accounts_status_changed;
DROP INDEX accounts_organisation_status;
