-- Each organisation's mailboxes, accounts and active accounts, kept on the organisation by
-- triggers (issue 18): the directory page lists every organisation with these counts on every
-- view, and counting them from the rows read the whole `accounts(organisation_id, status)`
-- index each time — 150 ms a view with 1.5 million accounts, more than the page's target.
-- Kept by the database, as 0160's mailbox counts are, so that no path can forget them.
ALTER TABLE organisations ADD COLUMN mailbox_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN account_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN active_account_count BIGINT NOT NULL DEFAULT 0;

-- Statement-level triggers over the statement's transition tables, not row triggers: a row
-- updated many times in one transaction leaves a chain of versions that every later update of
-- it walks from the index, so an import of a trust's 20,000 accounts updating its organisation
-- once per account went quadratic (an import of 2.3 million rows ran for over 15 minutes
-- instead of 3). Here a statement changes each organisation once, whatever its row count: a
-- batch of a thousand accounts is one update per organisation. (SQLite updates a row in place
-- and keeps row triggers.) An UPDATE trigger with transition tables cannot name columns
-- (https://www.postgresql.org/docs/15/sql-createtrigger.html), so it runs for every UPDATE of
-- accounts and changes only the organisations whose counts moved.
CREATE FUNCTION accounts_organisation_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE organisations g SET account_count = g.account_count + d.n,
            active_account_count = g.active_account_count + d.a
        FROM (SELECT organisation_id, COUNT(*) AS n,
                     COUNT(*) FILTER (WHERE status = 'active') AS a
              FROM new_rows GROUP BY organisation_id) d
        WHERE g.id = d.organisation_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE organisations g SET account_count = g.account_count - d.n,
            active_account_count = g.active_account_count - d.a
        FROM (SELECT organisation_id, COUNT(*) AS n,
                     COUNT(*) FILTER (WHERE status = 'active') AS a
              FROM old_rows GROUP BY organisation_id) d
        WHERE g.id = d.organisation_id;
    ELSE
        UPDATE organisations g SET account_count = g.account_count + d.n,
            active_account_count = g.active_account_count + d.a
        FROM (SELECT organisation_id, SUM(n) AS n, SUM(a) AS a
              FROM (SELECT organisation_id, -1 AS n,
                           -(CASE WHEN status = 'active' THEN 1 ELSE 0 END) AS a FROM old_rows
                    UNION ALL
                    SELECT organisation_id, 1, CASE WHEN status = 'active' THEN 1 ELSE 0 END
                    FROM new_rows) x
              GROUP BY organisation_id
              HAVING SUM(n) <> 0 OR SUM(a) <> 0) d
        WHERE g.id = d.organisation_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_organisation_counted_insert AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_organisation_counted();
CREATE TRIGGER accounts_organisation_counted_delete AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_organisation_counted();
CREATE TRIGGER accounts_organisation_counted_update AFTER UPDATE ON accounts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_organisation_counted();

CREATE FUNCTION mailboxes_organisation_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE organisations g SET mailbox_count = g.mailbox_count + d.n
        FROM (SELECT organisation_id, COUNT(*) AS n FROM new_rows GROUP BY organisation_id) d
        WHERE g.id = d.organisation_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE organisations g SET mailbox_count = g.mailbox_count - d.n
        FROM (SELECT organisation_id, COUNT(*) AS n FROM old_rows GROUP BY organisation_id) d
        WHERE g.id = d.organisation_id;
    END IF;
    RETURN NULL;
END $$;

-- A mailbox moved to another organisation (no code does; a hand-written UPDATE may). A row
-- trigger naming its column: 0160's triggers update mailboxes for every membership, and a
-- statement trigger on every UPDATE of mailboxes would run for each of those too.
CREATE FUNCTION mailboxes_organisation_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE organisations SET mailbox_count = mailbox_count - 1 WHERE id = OLD.organisation_id;
    UPDATE organisations SET mailbox_count = mailbox_count + 1 WHERE id = NEW.organisation_id;
    RETURN NULL;
END $$;

CREATE TRIGGER mailboxes_organisation_counted_insert AFTER INSERT ON mailboxes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailboxes_organisation_counted();
CREATE TRIGGER mailboxes_organisation_counted_delete AFTER DELETE ON mailboxes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailboxes_organisation_counted();
CREATE TRIGGER mailboxes_organisation_moved AFTER UPDATE OF organisation_id ON mailboxes
    FOR EACH ROW WHEN (OLD.organisation_id IS DISTINCT FROM NEW.organisation_id)
    EXECUTE FUNCTION mailboxes_organisation_moved();

-- Counted from the rows already there (after the triggers exist: the ALTER TABLEs above hold
-- organisations locked, and a trigger's UPDATE of one waits for this migration's end).
UPDATE organisations o SET
    mailbox_count = (SELECT COUNT(*) FROM mailboxes m WHERE m.organisation_id = o.id),
    account_count = (SELECT COUNT(*) FROM accounts a WHERE a.organisation_id = o.id),
    active_account_count = (SELECT COUNT(*) FROM accounts a
                            WHERE a.organisation_id = o.id AND a.status = 'active');
