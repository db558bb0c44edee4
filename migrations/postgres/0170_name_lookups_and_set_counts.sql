-- A name resolves from the index alone (issue 18). 0040's indexes found an organisation's
-- accounts with a name key, then read each one's row for its address and sorted them all to
-- keep the first six: "Kwame" in a trust of 20,000 accounts is hundreds of rows. With the
-- address in the index the look-up walks the matches already in address order and stops at
-- the sixth. Same names, so nothing that names them changes.
DROP INDEX accounts_name_key;
DROP INDEX accounts_first_key;
DROP INDEX accounts_initial_key;
CREATE INDEX accounts_name_key ON accounts(organisation_id, name_key, address);
CREATE INDEX accounts_first_key ON accounts(organisation_id, first_key, address);
CREATE INDEX accounts_initial_key ON accounts(organisation_id, initial_key, address);

-- 0001's index on organisation_id alone: every query that filters by organisation can use
-- `accounts_organisation_status` (organisation_id, status) instead, and each index is one
-- more B-tree to write for every account an import inserts.
DROP INDEX accounts_organisation;

-- 0160 counted memberships with a row trigger: a PL/pgSQL call, an account locked and a
-- mailbox row updated for every membership. An import's batch of a thousand memberships made
-- a thousand updates of a hundred-odd mailboxes, each a new row version with new entries in
-- every mailbox index (the at-risk index names the counts, so no update of them is HOT), and
-- it was half of the import's time: 230,000 rows in 29.4 s with it, 13.8 s with it disabled,
-- 14.0 s with the statement-level trigger below. Same counting, once per statement: the
-- accounts are read through a LATERAL look-up by primary key (so no plan can scan accounts,
-- whatever the planner believes of a table still filling inside the import's transaction)
-- and locked FOR SHARE as 0160 locked them (a status change in flight is waited for, and
-- waits for this transaction); each mailbox whose counts moved is updated once, in id order
-- (two transactions update shared mailboxes in the same order, so they queue instead of
-- deadlocking).
DROP TRIGGER memberships_counted ON memberships;
DROP FUNCTION memberships_counted();
DROP FUNCTION mailbox_count_membership(BIGINT, BIGINT, TEXT, BIGINT);

CREATE FUNCTION mailbox_count_add(p_mailbox BIGINT, ma BIGINT, oa BIGINT, mi BIGINT, oi BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ma <> 0 OR oa <> 0 OR mi <> 0 OR oi <> 0 THEN
        UPDATE mailboxes SET members_active = members_active + ma,
            owners_active = owners_active + oa,
            members_inactive = members_inactive + mi,
            owners_inactive = owners_inactive + oi
        WHERE id = p_mailbox;
    END IF;
END $$;

-- The transition tables are visible only to the trigger function's own statements, so each
-- operation has its query: memberships counted (+1) for INSERT, uncounted (-1) for DELETE,
-- both for UPDATE (a row whose mailbox, account and role did not change nets 0 and updates
-- nothing). An UPDATE trigger with transition tables cannot name columns
-- (https://www.postgresql.org/docs/15/sql-createtrigger.html): it runs for every UPDATE of
-- memberships, which only a change of role makes.
CREATE FUNCTION memberships_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c RECORD;
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR c IN SELECT d.mailbox_id,
                SUM(CASE WHEN d.role = 'member' AND a.active THEN 1 ELSE 0 END)::BIGINT AS ma,
                SUM(CASE WHEN d.role = 'owner' AND a.active THEN 1 ELSE 0 END)::BIGINT AS oa,
                SUM(CASE WHEN d.role = 'member' AND NOT a.active THEN 1 ELSE 0 END)::BIGINT AS mi,
                SUM(CASE WHEN d.role = 'owner' AND NOT a.active THEN 1 ELSE 0 END)::BIGINT AS oi
            FROM new_rows d CROSS JOIN LATERAL (
                SELECT x.status = 'active' AS active FROM accounts x
                WHERE x.id = d.account_id FOR SHARE) a
            GROUP BY d.mailbox_id ORDER BY d.mailbox_id
        LOOP
            PERFORM mailbox_count_add(c.mailbox_id, c.ma, c.oa, c.mi, c.oi);
        END LOOP;
    ELSIF TG_OP = 'DELETE' THEN
        FOR c IN SELECT d.mailbox_id,
                -SUM(CASE WHEN d.role = 'member' AND a.active THEN 1 ELSE 0 END)::BIGINT AS ma,
                -SUM(CASE WHEN d.role = 'owner' AND a.active THEN 1 ELSE 0 END)::BIGINT AS oa,
                -SUM(CASE WHEN d.role = 'member' AND NOT a.active THEN 1 ELSE 0 END)::BIGINT AS mi,
                -SUM(CASE WHEN d.role = 'owner' AND NOT a.active THEN 1 ELSE 0 END)::BIGINT AS oi
            FROM old_rows d CROSS JOIN LATERAL (
                SELECT x.status = 'active' AS active FROM accounts x
                WHERE x.id = d.account_id FOR SHARE) a
            GROUP BY d.mailbox_id ORDER BY d.mailbox_id
        LOOP
            PERFORM mailbox_count_add(c.mailbox_id, c.ma, c.oa, c.mi, c.oi);
        END LOOP;
    ELSE
        FOR c IN SELECT d.mailbox_id,
                SUM(CASE WHEN d.role = 'member' AND a.active THEN d.s ELSE 0 END)::BIGINT AS ma,
                SUM(CASE WHEN d.role = 'owner' AND a.active THEN d.s ELSE 0 END)::BIGINT AS oa,
                SUM(CASE WHEN d.role = 'member' AND NOT a.active THEN d.s ELSE 0 END)::BIGINT AS mi,
                SUM(CASE WHEN d.role = 'owner' AND NOT a.active THEN d.s ELSE 0 END)::BIGINT AS oi
            FROM (SELECT mailbox_id, account_id, role, -1 AS s FROM old_rows
                  UNION ALL
                  SELECT mailbox_id, account_id, role, 1 AS s FROM new_rows) d
            CROSS JOIN LATERAL (
                SELECT x.status = 'active' AS active FROM accounts x
                WHERE x.id = d.account_id FOR SHARE) a
            GROUP BY d.mailbox_id ORDER BY d.mailbox_id
        LOOP
            PERFORM mailbox_count_add(c.mailbox_id, c.ma, c.oa, c.mi, c.oi);
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_counted_insert AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_counted();
CREATE TRIGGER memberships_counted_delete AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_counted();
CREATE TRIGGER memberships_counted_update AFTER UPDATE ON memberships
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_counted();
