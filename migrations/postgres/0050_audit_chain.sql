-- The audit trail becomes a hash chain (src/audit/chain.rs documents the canonical form).
--
-- Each event written from now on carries its place in the chain (`seq`, 1, 2, 3…), the hash
-- of the event before it (`prev_hash`) and its own (`hash`): SHA-256 as 64 lowercase hex
-- digits. Events written before this migration keep NULL there: they are covered as a block
-- by the genesis digest that the first chained event links to (see chain.rs, "Genesis"), so
-- changing or removing one of them breaks the link of event 1.
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
-- One event per place: two writers can never both append event N (a fork).
CREATE UNIQUE INDEX audit_events_seq ON audit_events(seq);

-- 0001 refused UPDATE and DELETE row by row; TRUNCATE skips row triggers, so refuse it too.
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The chain's head: how many chained events there are and the hash of the last one, in one
-- row that every writer updates in its own transaction. The UPDATE's row lock makes writers
-- take turns: a second writer waits for the first to commit, then (SERIALIZABLE) fails with
-- a serialisation error and is retried, or (READ COMMITTED) reads the new head. NULL
-- head_hash: no chained event yet.
CREATE TABLE audit_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    event_count BIGINT NOT NULL,
    head_hash   TEXT,
    updated_at  BIGINT NOT NULL
);
INSERT INTO audit_head (id, event_count, head_hash, updated_at) VALUES (1, 0, NULL, 0);
CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.event_count < OLD.event_count OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'audit_head only moves forward';
    END IF;
    RETURN NEW;
END; $$;
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only();

-- Signed checkpoints (`postroom audit checkpoint`, and on `[audit] checkpoint_every` in the
-- daemon): the chain's length and head hash at a time, signed with the Ed25519 key of
-- `[audit] signing_key_file`. `text` is the checkpoint exactly as printed and emailed.
CREATE TABLE audit_checkpoints (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    event_count BIGINT NOT NULL,
    head_hash   TEXT   NOT NULL,
    public_key  TEXT   NOT NULL,
    signature   TEXT   NOT NULL,
    text        TEXT   NOT NULL
);
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_checkpoints is append-only'; END; $$;
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();
