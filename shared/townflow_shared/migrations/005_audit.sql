-- The audit trail (issue #28, 等保 2.0 level 3 安全审计): one hash chain per service's database
-- (townflow_shared/audit.py). A record is written in the transaction of the change it records
-- (no lock: `id` orders the writes); the sealing pass chains it moments later (`seq`, `prev_hash`,
-- `hash`, once); never changed after; deleted only by `audit prune`, behind a checkpoint record.
CREATE TABLE IF NOT EXISTS audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq bigint UNIQUE,                 -- the chain's order: 1, 2, 3 ... with no gap; NULL until sealed
    at timestamptz NOT NULL,
    actor text NOT NULL,               -- the token's subject; '' without a valid token
    roles text[] NOT NULL,
    town_code text,                    -- the caller's town; NULL for the county's roles
    action text NOT NULL,              -- a dotted code: task.accept, matter.citizen_read
    target_type text NOT NULL,
    target_id text NOT NULL,           -- a task id, a ticket number, a case id: never personal data
    outcome text NOT NULL,             -- 'ok' or the refusal's code
    client text NOT NULL,
    forwarded_for text NOT NULL,
    correlation_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    prev_hash text,
    hash text
);
-- The chain's head: one row, locked by each sealing pass (and prune) until it commits, so two
-- replicas seal in turn and the chain never forks. No command waits for it.
CREATE TABLE IF NOT EXISTS audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (true, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;

-- The sealing pass's work: what is not chained yet, oldest written first.
CREATE INDEX IF NOT EXISTS audit_log_unsealed ON audit_log (id) WHERE seq IS NULL;
-- The auditor's searches (newest written first): by person, by what was acted on, by action, by
-- town; a date range alone by time.
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target_id, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action text_pattern_ops, id);
CREATE INDEX IF NOT EXISTS audit_log_by_town ON audit_log (town_code, id);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at);

-- Append-only in the database too: an UPDATE is refused but the sealing of an unsealed record
-- (its chain columns, once, nothing else), a TRUNCATE is refused, a DELETE only passes inside
-- `audit prune`'s transaction. (An owner can drop the trigger: the chain, and the SIEM's copy on
-- the audit topic, still tell.)
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('townflow.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND OLD.hash IS NULL
            AND to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash' = to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (%)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
