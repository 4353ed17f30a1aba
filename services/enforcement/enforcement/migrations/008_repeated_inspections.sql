-- 多头检查 (SPEC §10): a need that arrives for a target already visited separately by several
-- units within the window is marked, and proposed to join the target's latest planned inspection.
ALTER TABLE needs ADD COLUMN IF NOT EXISTS repeated_inspection boolean NOT NULL DEFAULT false;
-- The visits of a town's targets within the window, read on every new need and for the alerts.
CREATE INDEX IF NOT EXISTS inspections_visits ON inspections (town_code, target, started_at)
    WHERE started_at IS NOT NULL;
