-- Saved searches (issue 17): a staff member's named filters on the requests page, theirs
-- alone. `query` is the page's query string, without a cursor.
CREATE TABLE saved_searches (
    id          BIGSERIAL PRIMARY KEY,
    staff       TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    query       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (staff, name)
);

-- Every account, name and mailbox a request mentions (its sender, mailbox, requester and
-- account, and the addresses and names among the fields postroom understood), one folded
-- term a row (src/store/mentions.rs), so that the requests page finds a request by any of
-- them with one index lookup.
CREATE TABLE request_mentions (
    term        TEXT   NOT NULL,
    request_id  BIGINT NOT NULL REFERENCES requests(id),
    PRIMARY KEY (term, request_id)
);
CREATE INDEX request_mentions_request ON request_mentions(request_id);

-- Requests recorded before this migration, indexed by `Store::migrate` in batches (the
-- names are folded in Rust, as the accounts' name keys of 0040 are).
CREATE TABLE request_mentions_pending (
    request_id  BIGINT PRIMARY KEY
);
INSERT INTO request_mentions_pending (request_id) SELECT id FROM requests;
