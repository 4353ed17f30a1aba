-- The audit trail (issue #28, 等保 2.0 level 3 安全审计): one hash chain per service's database
-- (townflow_shared/audit.py, audit_trail.py). A record is written into `audit_pending` in the
-- transaction of the change it records (one index, no lock: `id` orders the writes); the sealing
-- pass moves it, moments later, into `audit_log` with its place in the chain (`seq`, `prev_hash`,
-- `hash`). `audit_log` is never changed; deleted only by `audit prune`, behind a checkpoint record.
CREATE TABLE IF NOT EXISTS audit_pending (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    roles text[] NOT NULL,
    town_code text,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text NOT NULL,
    outcome text NOT NULL,
    client text NOT NULL,
    forwarded_for text NOT NULL,
    correlation_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq bigint PRIMARY KEY,            -- the chain's order: 1, 2, 3 ... with no gap
    id bigint NOT NULL UNIQUE,         -- the order written (audit_pending's id): the pages' order
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
    prev_hash text NOT NULL,
    hash text NOT NULL
);
-- The chain's head: one row, locked by each sealing pass (and prune) until it commits, so two
-- replicas seal in turn and the chain never forks. No command waits for it.
CREATE TABLE IF NOT EXISTS audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (true, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;

-- The auditor's searches (newest written first): by person, by what was acted on, by action, by
-- town; a date range alone by time.
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target_id, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action text_pattern_ops, id);
CREATE INDEX IF NOT EXISTS audit_log_by_town ON audit_log (town_code, id);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at);

-- What the auditor searches: the chain and what waits to join it (seq and hashes NULL until then).
CREATE OR REPLACE VIEW audit_records AS
    SELECT seq, id, at, actor, roles, town_code, action, target_type, target_id, outcome, client, forwarded_for,
           correlation_id, prev_hash, hash FROM audit_log
    UNION ALL
    SELECT NULL, id, at, actor, roles, town_code, action, target_type, target_id, outcome, client, forwarded_for,
           correlation_id, NULL, NULL FROM audit_pending;

-- Append-only in the database too: an UPDATE or a TRUNCATE of either table is refused; a DELETE
-- passes only inside the sealing pass's transaction (audit_pending) or `audit prune`'s
-- (audit_log). An owner can drop the triggers: the chain, and the SIEM's copy on the audit topic,
-- still tell what was done to audit_log.
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting(TG_ARGV[0], true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only (%)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_append_only('townflow.audit_prune');
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only('townflow.audit_prune');
CREATE OR REPLACE TRIGGER audit_pending_append_only BEFORE UPDATE OR DELETE ON audit_pending
    FOR EACH ROW EXECUTE FUNCTION audit_append_only('townflow.audit_seal');
CREATE OR REPLACE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only('townflow.audit_seal');
