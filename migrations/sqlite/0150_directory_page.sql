-- The staff page's directory at national scale (issue 18, benches/national.rs): a page of
-- shared mailboxes is read in organisation-name and address order without sorting them all
-- (mailboxes by organisation, then address), and an organisation's account counts, all and
-- active, come from an index alone rather than from every account's row.
CREATE INDEX mailboxes_organisation_address ON mailboxes(organisation_id, address);
CREATE INDEX accounts_organisation_status ON accounts(organisation_id, status);
