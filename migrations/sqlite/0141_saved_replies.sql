-- Saved replies (issue 17): answers admins keep for the common cases, offered in the reject
-- and comment forms of a request's page. `body` holds placeholders such as {reference},
-- filled when a reply is used (src/saved_reply.rs).
CREATE TABLE saved_replies (
    id          INTEGER PRIMARY KEY,
    title       TEXT   NOT NULL UNIQUE,
    body        TEXT   NOT NULL,
    updated_by  TEXT   NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
