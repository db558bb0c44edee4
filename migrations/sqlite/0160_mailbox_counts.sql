-- Each shared mailbox's memberships counted by role and by whether the account is active
-- (issue 18): the directory page's at-risk view, the normal page and the continuity pass read
-- these instead of counting 1.8 million memberships at national scale. Columns on mailboxes
-- rather than a table of their own: a new mailbox starts at 0 by the columns' default (no
-- trigger on mailboxes), and the partial index below can then walk the at-risk mailboxes in
-- organisation and address order from the one table.
--
-- The database keeps them, so no code path can forget to: triggers on every change of a
-- membership (insert, delete, a new role, mailbox or account — one row at a time, so a
-- multi-row INSERT is counted row by row) and on an account's status moving into or out of
-- 'active' (every mailbox that account is in). Accounts and mailboxes with memberships cannot
-- be deleted (foreign keys, on in sqlx's SQLite), so no trigger is needed there:
-- `retention::delete_account` deletes the memberships first, which the delete trigger counts.
ALTER TABLE mailboxes ADD COLUMN members_active INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN owners_active INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN members_inactive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN owners_inactive INTEGER NOT NULL DEFAULT 0;

UPDATE mailboxes SET
    members_active = c.members_active,
    owners_active = c.owners_active,
    members_inactive = c.members_inactive,
    owners_inactive = c.owners_inactive
FROM (SELECT ms.mailbox_id,
             SUM(ms.role = 'member' AND a.status = 'active') AS members_active,
             SUM(ms.role = 'owner' AND a.status = 'active') AS owners_active,
             SUM(ms.role = 'member' AND a.status <> 'active') AS members_inactive,
             SUM(ms.role = 'owner' AND a.status <> 'active') AS owners_inactive
      FROM memberships ms JOIN accounts a ON a.id = ms.account_id
      GROUP BY ms.mailbox_id) AS c
WHERE c.mailbox_id = mailboxes.id;

CREATE TRIGGER memberships_counted_insert AFTER INSERT ON memberships
BEGIN
    UPDATE mailboxes SET
        members_active = members_active + (NEW.role = 'member' AND a.status = 'active'),
        owners_active = owners_active + (NEW.role = 'owner' AND a.status = 'active'),
        members_inactive = members_inactive + (NEW.role = 'member' AND a.status <> 'active'),
        owners_inactive = owners_inactive + (NEW.role = 'owner' AND a.status <> 'active')
    FROM accounts a WHERE a.id = NEW.account_id AND mailboxes.id = NEW.mailbox_id;
END;

CREATE TRIGGER memberships_counted_delete AFTER DELETE ON memberships
BEGIN
    UPDATE mailboxes SET
        members_active = members_active - (OLD.role = 'member' AND a.status = 'active'),
        owners_active = owners_active - (OLD.role = 'owner' AND a.status = 'active'),
        members_inactive = members_inactive - (OLD.role = 'member' AND a.status <> 'active'),
        owners_inactive = owners_inactive - (OLD.role = 'owner' AND a.status <> 'active')
    FROM accounts a WHERE a.id = OLD.account_id AND mailboxes.id = OLD.mailbox_id;
END;

-- A membership changed in place (a new role; its mailbox or account, which no code does today):
-- uncounted as it was, counted as it is.
CREATE TRIGGER memberships_counted_update AFTER UPDATE OF mailbox_id, account_id, role ON memberships
WHEN OLD.role IS NOT NEW.role OR OLD.mailbox_id IS NOT NEW.mailbox_id OR OLD.account_id IS NOT NEW.account_id
BEGIN
    UPDATE mailboxes SET
        members_active = members_active - (OLD.role = 'member' AND a.status = 'active'),
        owners_active = owners_active - (OLD.role = 'owner' AND a.status = 'active'),
        members_inactive = members_inactive - (OLD.role = 'member' AND a.status <> 'active'),
        owners_inactive = owners_inactive - (OLD.role = 'owner' AND a.status <> 'active')
    FROM accounts a WHERE a.id = OLD.account_id AND mailboxes.id = OLD.mailbox_id;
    UPDATE mailboxes SET
        members_active = members_active + (NEW.role = 'member' AND a.status = 'active'),
        owners_active = owners_active + (NEW.role = 'owner' AND a.status = 'active'),
        members_inactive = members_inactive + (NEW.role = 'member' AND a.status <> 'active'),
        owners_inactive = owners_inactive + (NEW.role = 'owner' AND a.status <> 'active')
    FROM accounts a WHERE a.id = NEW.account_id AND mailboxes.id = NEW.mailbox_id;
END;

-- An account became active, or stopped being: each of its memberships moves between the
-- active and inactive counts of its role (locked ↔ disabled moves nothing).
CREATE TRIGGER accounts_status_counted AFTER UPDATE OF status ON accounts
WHEN (OLD.status = 'active') <> (NEW.status = 'active')
BEGIN
    UPDATE mailboxes SET
        members_active = members_active + (ms.role = 'member') * ((NEW.status = 'active') - (OLD.status = 'active')),
        owners_active = owners_active + (ms.role = 'owner') * ((NEW.status = 'active') - (OLD.status = 'active')),
        members_inactive = members_inactive - (ms.role = 'member') * ((NEW.status = 'active') - (OLD.status = 'active')),
        owners_inactive = owners_inactive - (ms.role = 'owner') * ((NEW.status = 'active') - (OLD.status = 'active'))
    FROM memberships ms WHERE ms.account_id = NEW.id AND ms.mailbox_id = mailboxes.id;
END;

-- The at-risk view (`MailboxSummary::at_risk`: fewer than two active people, or no active
-- owner) walks only the mailboxes at risk, in organisation and address order, and stops at
-- the page's end. The query repeats this WHERE word for word so that both planners use it.
CREATE INDEX mailboxes_at_risk ON mailboxes(organisation_id, address)
    WHERE members_active + owners_active < 2 OR owners_active = 0;
