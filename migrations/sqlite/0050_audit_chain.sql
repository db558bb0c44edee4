-- The audit trail becomes a hash chain (src/audit/chain.rs documents the canonical form).
--
-- Each event written from now on carries its place in the chain (`seq`, 1, 2, 3…), the hash
-- of the event before it (`prev_hash`) and its own (`hash`): SHA-256 as 64 lowercase hex
-- digits. Events written before this migration keep NULL there: they are covered as a block
-- by the genesis digest that the first chained event links to (see chain.rs, "Genesis"), so
-- changing or removing one of them breaks the link of event 1.
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
-- One event per place: two writers can never both append event N (a fork).
CREATE UNIQUE INDEX audit_events_seq ON audit_events(seq);

-- The chain's head: how many chained events there are and the hash of the last one, in one
-- row that every writer updates in its own transaction (writers take turns on it). NULL
-- head_hash: no chained event yet.
CREATE TABLE audit_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    event_count INTEGER NOT NULL,
    head_hash   TEXT,
    updated_at  INTEGER NOT NULL
);
INSERT INTO audit_head (id, event_count, head_hash, updated_at) VALUES (1, 0, NULL, 0);
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
WHEN NEW.event_count < OLD.event_count OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;

-- Signed checkpoints (`postroom audit checkpoint`, and on `[audit] checkpoint_every` in the
-- daemon): the chain's length and head hash at a time, signed with the Ed25519 key of
-- `[audit] signing_key_file`. `text` is the checkpoint exactly as printed and emailed.
CREATE TABLE audit_checkpoints (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    head_hash   TEXT    NOT NULL,
    public_key  TEXT    NOT NULL,
    signature   TEXT    NOT NULL,
    text        TEXT    NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
