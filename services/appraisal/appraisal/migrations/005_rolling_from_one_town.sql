-- A rolling upgrade of a one-town deployment from the version before the county change (004):
-- until the last replica of that version is replaced, it writes facts, scores and alerts without a
-- town. Expand, so those writes land in that one town (`townflow.default_town`, see
-- townflow_shared.db.migrate); the release after drops all of this again (contract, README
-- "Upgrading"). Only in the start-up that applied 004: a database already on the county schema
-- has no replica of the older version left, and may already serve several towns.
DO $$
DECLARE
    legacy text := coalesce(current_setting('townflow.default_town', true), '');
    t text;
BEGIN
    IF legacy = '' OR NOT EXISTS (
            SELECT 1 FROM schema_migrations
             WHERE name = 'appraisal/004_towns.sql'
               AND applied_at >= (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())) THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['task_facts', 'matter_facts', 'inspection_facts', 'seconded_scores', 'alerts',
                             'score_cache', 'inspection_points', 'subject_totals'] LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN town_code SET DEFAULT %L', t, legacy);
    END LOOP;
    -- The keys the old version's ON CONFLICT clauses name, now that 004 led every key with the
    -- town: unique within one town, which is all the old version knows.
    CREATE UNIQUE INDEX matter_facts_previous_version ON matter_facts (request_id);
    CREATE UNIQUE INDEX task_facts_previous_version ON task_facts (task_id);
    CREATE UNIQUE INDEX score_cache_previous_version ON score_cache (subject_type, subject_id, period);
    CREATE UNIQUE INDEX seconded_scores_previous_version ON seconded_scores (unit, period);
END $$;
