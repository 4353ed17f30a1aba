-- SPEC §8: one deployment serves every town of a county, and every record belongs to a town.
-- Rows written before the county change are the town's whose database this was: the one town of
-- a one-town deployment, or TOWNFLOW_LEGACY_TOWN_CODE in a county (townflow.default_town).
DO $$
DECLARE
    t text;
    townless boolean;
BEGIN
    FOREACH t IN ARRAY ARRAY['inspections', 'needs', 'cases', 'case_steps', 'plans'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS town_code text', t);
        IF coalesce(current_setting('townflow.default_town', true), '') = '' THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE town_code IS NULL)', t) INTO townless;
            IF townless THEN
                RAISE EXCEPTION '% written before the county change have no town: set TOWNFLOW_LEGACY_TOWN_CODE', t;
            END IF;
        ELSE
            EXECUTE format('UPDATE %I SET town_code = current_setting(''townflow.default_town'') WHERE town_code IS NULL', t);
        END IF;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN town_code SET NOT NULL', t);
    END LOOP;
END $$;

-- 综合查一次 joins needs for one target within one town: one planned inspection per (town, target).
DROP INDEX inspections_one_planned;
CREATE UNIQUE INDEX inspections_one_planned ON inspections (town_code, target) WHERE status = 'planned';
DROP INDEX needs_one_per_task;
CREATE UNIQUE INDEX needs_one_per_task ON needs (town_code, task_id) WHERE source = 'task';

-- The lists a town's staff read, newest first.
CREATE INDEX inspections_of_town ON inspections (town_code, created_at DESC);
CREATE INDEX cases_of_town ON cases (town_code, filed_at DESC);
CREATE INDEX plans_of_town ON plans (town_code, published_at DESC);
-- The case-deadline loop reads every town's due cases through cases_next_flag (each with its town's rules).
