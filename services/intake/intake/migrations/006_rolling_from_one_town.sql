-- A rolling upgrade of a one-town deployment from the version before the county change (005):
-- until the last replica of that version is replaced, it files with its own statements, which name
-- no town. Expand, so they keep working and land in that one town (`townflow.default_town`, see
-- townflow_shared.db.migrate); the release after drops both again (contract, README "Upgrading").
-- Only in the start-up that applied 005: a database already on the county schema has no replica
-- of the older version left, and may already serve several towns.
DO $$
DECLARE
    legacy text := coalesce(current_setting('townflow.default_town', true), '');
BEGIN
    IF legacy = '' OR NOT EXISTS (
            SELECT 1 FROM schema_migrations
             WHERE name = 'intake/005_towns.sql'
               AND applied_at >= (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())) THEN
        RETURN;
    END IF;
    -- requests.town_code is read off the ticket number (005), so the old INSERT needs nothing.
    EXECUTE format('ALTER TABLE ticket_sequences ALTER COLUMN town_code SET DEFAULT %L', legacy);
    EXECUTE format('ALTER TABLE idempotency_keys ALTER COLUMN town_code SET DEFAULT %L', legacy);
    -- The old version claims tickets with ON CONFLICT (day): one town's days are unique, and both
    -- versions then count on the same row, so the day's numbers stay gap-free and unrepeated.
    CREATE UNIQUE INDEX ticket_sequences_previous_version ON ticket_sequences (day);
END $$;
