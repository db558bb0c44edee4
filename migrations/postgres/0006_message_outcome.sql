-- Each stored message remembers its own outcome and request, so that a message fetched again
-- (after a crash between commit and IMAP move) is filed exactly where it went the first time,
-- whether it became a request, a comment on one, or a confirmation.
ALTER TABLE messages ADD COLUMN outcome TEXT;
ALTER TABLE messages ADD COLUMN request_id BIGINT REFERENCES requests(id);
