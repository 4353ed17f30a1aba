-- A rolling upgrade of a one-town deployment from the version before the county change (006):
-- until the last replica of that version is replaced, it writes matters, tasks, supervisions,
-- extensions and off-post registrations without a town. Expand, so those writes land in that one
-- town (`townflow.default_town`, see townflow_shared.db.migrate); the release after drops the
-- defaults again (contract, README "Upgrading"). Its ON CONFLICT clauses name no key, so every
-- key still serves them. Only in the start-up that applied 006: a database already on the county
-- schema has no replica of the older version left.
DO $$
DECLARE
    legacy text := coalesce(current_setting('townflow.default_town', true), '');
    t text;
BEGIN
    IF legacy = '' OR NOT EXISTS (
            SELECT 1 FROM schema_migrations
             WHERE name = 'dispatch/006_towns.sql'
               AND applied_at >= (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())) THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['matters', 'tasks', 'supervisions', 'extensions', 'off_post'] LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN town_code SET DEFAULT %L', t, legacy);
    END LOOP;
END $$;
