-- Which postroom instance works which IMAP inbox, when several run on one database: the holder
-- of an inbox's lease renews `expires_at` every quarter of `[database] lease_ttl`; once it
-- lies in the past, any instance may take the inbox over (src/imap/lease.rs). Times are Unix
-- milliseconds from the database's own clock, so that hosts whose clocks differ still agree.
-- `inbox` is `ImapConfig::inbox_id()`: `user@host/folder`.
CREATE TABLE inbox_leases (
    inbox        TEXT    PRIMARY KEY,
    holder       TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    acquired_at  BIGINT  NOT NULL,
    renewed_at   BIGINT  NOT NULL
);
