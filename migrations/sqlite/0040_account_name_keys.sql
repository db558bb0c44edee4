-- Names resolve to accounts (issue 12): each account's name folded three ways (src/resolve.rs,
-- `NameKeys`), indexed per organisation so a look-up reads a few index entries, not the
-- organisation. Accents are folded in Rust (deunicode), so existing rows are filled in by
-- `Store::migrate` after this migration (`name_key IS NULL` marks a row not yet keyed).
ALTER TABLE accounts ADD COLUMN name_key TEXT;
ALTER TABLE accounts ADD COLUMN first_key TEXT;
ALTER TABLE accounts ADD COLUMN initial_key TEXT;
CREATE INDEX accounts_name_key ON accounts(organisation_id, name_key);
CREATE INDEX accounts_first_key ON accounts(organisation_id, first_key);
CREATE INDEX accounts_initial_key ON accounts(organisation_id, initial_key);
CREATE INDEX accounts_unkeyed ON accounts(id) WHERE name_key IS NULL;
