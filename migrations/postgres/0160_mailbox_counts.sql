-- Each shared mailbox's memberships counted by role and by whether the account is active
-- (issue 18): the directory page's at-risk view, the normal page and the continuity pass read
-- these instead of counting 1.8 million memberships at national scale. Columns on mailboxes
-- rather than a table of their own: a new mailbox starts at 0 by the columns' default (no
-- trigger on mailboxes), and the partial index below can then walk the at-risk mailboxes in
-- organisation and address order from the one table.
--
-- The database keeps them, so no code path can forget to: triggers on every change of a
-- membership (insert, delete, a new role, mailbox or account — FOR EACH ROW, so a multi-row
-- INSERT is counted row by row) and on an account's status moving into or out of 'active'
-- (every mailbox that account is in). Accounts and mailboxes with memberships cannot be
-- deleted (foreign keys), so no trigger is needed there: `retention::delete_account` deletes
-- the memberships first, which the delete trigger counts.
ALTER TABLE mailboxes ADD COLUMN members_active BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN owners_active BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN members_inactive BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN owners_inactive BIGINT NOT NULL DEFAULT 0;

-- One membership counted (p_sign 1) or uncounted (-1) in its mailbox. The account's row is
-- read FOR SHARE: that waits for a status change in flight (and makes one wait for this
-- transaction), so a membership written at the same time as its account's status changes is
-- counted with the status that ends up committed. A membership's foreign-key check alone
-- takes a lock that a status UPDATE does not wait for.
CREATE FUNCTION mailbox_count_membership(p_mailbox BIGINT, p_account BIGINT, p_role TEXT, p_sign BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    is_active BOOLEAN;
BEGIN
    SELECT a.status = 'active' INTO is_active FROM accounts a WHERE a.id = p_account FOR SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE mailboxes SET
        members_active = members_active + CASE WHEN p_role = 'member' AND is_active THEN p_sign ELSE 0 END,
        owners_active = owners_active + CASE WHEN p_role = 'owner' AND is_active THEN p_sign ELSE 0 END,
        members_inactive = members_inactive + CASE WHEN p_role = 'member' AND NOT is_active THEN p_sign ELSE 0 END,
        owners_inactive = owners_inactive + CASE WHEN p_role = 'owner' AND NOT is_active THEN p_sign ELSE 0 END
    WHERE id = p_mailbox;
END $$;

-- Every change of a membership: uncounted as it was, counted as it is.
CREATE FUNCTION memberships_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.mailbox_id = NEW.mailbox_id AND OLD.account_id = NEW.account_id
       AND OLD.role = NEW.role THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM mailbox_count_membership(OLD.mailbox_id, OLD.account_id, OLD.role, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM mailbox_count_membership(NEW.mailbox_id, NEW.account_id, NEW.role, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_counted AFTER INSERT OR DELETE OR UPDATE OF mailbox_id, account_id, role
    ON memberships FOR EACH ROW EXECUTE FUNCTION memberships_counted();

-- An account became active, or stopped being: each of its memberships moves between the
-- active and inactive counts of its role (locked ↔ disabled moves nothing).
CREATE FUNCTION accounts_status_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d BIGINT := CASE WHEN NEW.status = 'active' THEN 1 ELSE 0 END
              - CASE WHEN OLD.status = 'active' THEN 1 ELSE 0 END;
BEGIN
    IF d <> 0 THEN
        UPDATE mailboxes m SET
            members_active = m.members_active + CASE WHEN ms.role = 'member' THEN d ELSE 0 END,
            owners_active = m.owners_active + CASE WHEN ms.role = 'owner' THEN d ELSE 0 END,
            members_inactive = m.members_inactive - CASE WHEN ms.role = 'member' THEN d ELSE 0 END,
            owners_inactive = m.owners_inactive - CASE WHEN ms.role = 'owner' THEN d ELSE 0 END
        FROM memberships ms WHERE ms.account_id = NEW.id AND ms.mailbox_id = m.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_status_counted AFTER UPDATE OF status ON accounts
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION accounts_status_counted();

-- Counted from the rows already there (after the triggers exist: the ALTER TABLEs above hold
-- mailboxes locked, so no membership can be written in between).
UPDATE mailboxes m SET
    members_active = c.members_active,
    owners_active = c.owners_active,
    members_inactive = c.members_inactive,
    owners_inactive = c.owners_inactive
FROM (SELECT ms.mailbox_id,
             COUNT(*) FILTER (WHERE ms.role = 'member' AND a.status = 'active') AS members_active,
             COUNT(*) FILTER (WHERE ms.role = 'owner' AND a.status = 'active') AS owners_active,
             COUNT(*) FILTER (WHERE ms.role = 'member' AND a.status <> 'active') AS members_inactive,
             COUNT(*) FILTER (WHERE ms.role = 'owner' AND a.status <> 'active') AS owners_inactive
      FROM memberships ms JOIN accounts a ON a.id = ms.account_id
      GROUP BY ms.mailbox_id) AS c
WHERE c.mailbox_id = m.id;

-- The at-risk view (`MailboxSummary::at_risk`: fewer than two active people, or no active
-- owner) walks only the mailboxes at risk, in organisation and address order, and stops at
-- the page's end. The query repeats this WHERE word for word so that both planners use it.
CREATE INDEX mailboxes_at_risk ON mailboxes(organisation_id, address)
    WHERE members_active + owners_active < 2 OR owners_active = 0;
