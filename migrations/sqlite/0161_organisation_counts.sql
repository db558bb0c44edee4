-- Each organisation's mailboxes, accounts and active accounts, kept on the organisation by
-- triggers (issue 18): the directory page lists every organisation with these counts on every
-- view, and counting them from the rows read the whole `accounts(organisation_id, status)`
-- index each time — 150 ms a view with 1.5 million accounts, more than the page's target.
-- Kept by the database, as 0160's mailbox counts are, so that no path can forget them.
ALTER TABLE organisations ADD COLUMN mailbox_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN account_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN active_account_count INTEGER NOT NULL DEFAULT 0;

UPDATE organisations SET
    mailbox_count = (SELECT COUNT(*) FROM mailboxes m WHERE m.organisation_id = organisations.id),
    account_count = (SELECT COUNT(*) FROM accounts a WHERE a.organisation_id = organisations.id),
    active_account_count = (SELECT COUNT(*) FROM accounts a
                            WHERE a.organisation_id = organisations.id AND a.status = 'active');

CREATE TRIGGER accounts_organisation_counted_insert AFTER INSERT ON accounts
BEGIN
    UPDATE organisations SET account_count = account_count + 1,
        active_account_count = active_account_count + (NEW.status = 'active')
    WHERE id = NEW.organisation_id;
END;

CREATE TRIGGER accounts_organisation_counted_delete AFTER DELETE ON accounts
BEGIN
    UPDATE organisations SET account_count = account_count - 1,
        active_account_count = active_account_count - (OLD.status = 'active')
    WHERE id = OLD.organisation_id;
END;

-- A new status or a new organisation: uncounted as it was, counted as it is.
CREATE TRIGGER accounts_organisation_counted_update AFTER UPDATE OF status, organisation_id ON accounts
WHEN OLD.organisation_id IS NOT NEW.organisation_id
  OR (OLD.status = 'active') IS NOT (NEW.status = 'active')
BEGIN
    UPDATE organisations SET account_count = account_count - 1,
        active_account_count = active_account_count - (OLD.status = 'active')
    WHERE id = OLD.organisation_id;
    UPDATE organisations SET account_count = account_count + 1,
        active_account_count = active_account_count + (NEW.status = 'active')
    WHERE id = NEW.organisation_id;
END;

CREATE TRIGGER mailboxes_organisation_counted_insert AFTER INSERT ON mailboxes
BEGIN
    UPDATE organisations SET mailbox_count = mailbox_count + 1 WHERE id = NEW.organisation_id;
END;

CREATE TRIGGER mailboxes_organisation_counted_delete AFTER DELETE ON mailboxes
BEGIN
    UPDATE organisations SET mailbox_count = mailbox_count - 1 WHERE id = OLD.organisation_id;
END;

CREATE TRIGGER mailboxes_organisation_counted_update AFTER UPDATE OF organisation_id ON mailboxes
WHEN OLD.organisation_id IS NOT NEW.organisation_id
BEGIN
    UPDATE organisations SET mailbox_count = mailbox_count - 1 WHERE id = OLD.organisation_id;
    UPDATE organisations SET mailbox_count = mailbox_count + 1 WHERE id = NEW.organisation_id;
END;
