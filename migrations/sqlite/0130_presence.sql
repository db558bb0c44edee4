-- Presence (issue 17): who has a waiting request open on the staff page, or is filling in one
-- of its decision forms. A row lives until `expires_at` (each page view and each heartbeat of
-- the page's script pushes it on); in the database so that every postroom instance behind one
-- address sees the same people. Expired rows mean nothing and are swept on the next write.
CREATE TABLE presence (
    request_id  INTEGER NOT NULL REFERENCES requests(id),
    staff       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (request_id, staff)
);
CREATE INDEX presence_expires ON presence(expires_at);
