-- The reason a request was given, whole (issue 14): `Reason` as JSON, details included (which
-- account, which mailbox), so the staff page shows the exact sentence the site was told.
-- `reason` keeps the code alone, which queries and indexes use; both are written together.
-- NULL for requests recorded before this migration (the page then says what the code means).
ALTER TABLE requests ADD COLUMN reason_json TEXT;
