-- The audit trail (issue #28, 等保 2.0 level 3 安全审计): one hash chain per service's database
-- (townflow_shared/audit.py). Appended in the transaction of the change it records; never
-- updated; deleted only by `audit prune`, which leaves a checkpoint record behind.
CREATE TABLE IF NOT EXISTS audit_log (
    seq bigint PRIMARY KEY,            -- the chain's order: 1, 2, 3 ... with no gap
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
-- The chain's head: one row, locked by each append until its transaction commits, so two
-- replicas append in turn and the chain never forks.
CREATE TABLE IF NOT EXISTS audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (true, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;

-- The auditor's searches (newest first, by number): by person, by what was acted on, by action,
-- by town; a date range alone by time.
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action text_pattern_ops, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_town ON audit_log (town_code, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at);

-- Append-only in the database too: an UPDATE or a TRUNCATE is refused, a DELETE only passes
-- inside `audit prune`'s transaction. (An owner can drop the trigger: the chain, and the SIEM's
-- copy on the audit topic, still tell.)
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('townflow.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (%)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
