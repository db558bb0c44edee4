-- What each running instance last reported about itself, so that `postroom status` (another
-- process) and the staff page of any instance see every inbox watcher's state.
CREATE TABLE instance_health (
    instance           TEXT    PRIMARY KEY,
    imap_state         TEXT    NOT NULL,
    imap_error         TEXT,
    token_failures     INTEGER NOT NULL DEFAULT 0,
    last_processed_at  INTEGER,
    started_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Retention: the raw bytes of old messages are dropped, the row (Message-ID, SHA-256, the
-- request and its audit trail) stays, so a re-delivered old message is still a duplicate.
ALTER TABLE messages ADD COLUMN raw_deleted_at INTEGER;
CREATE INDEX messages_received ON messages(received_at);
