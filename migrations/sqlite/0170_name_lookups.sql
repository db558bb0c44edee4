-- A name resolves from the index alone (issue 18). 0040's indexes found an organisation's
-- accounts with a name key, then read each one's row for its address and sorted them all to
-- keep the first six: "Kwame" in a trust of 20,000 accounts is hundreds of rows, 12–14 ms on
-- SQLite with 1.5 million accounts. With the address in the index the look-up walks the
-- matches already in address order and stops at the sixth (`resolve::name`, p99 4.7 →
-- 0.6 ms in the national benchmark). Same names, so nothing that names them changes.
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
