-- Wake the outbox relay when rows are added. A trigger instead of a pg_notify() call after each
-- insert saves a round trip per transaction; PostgreSQL folds the identical notifications of one
-- transaction into one, delivered at commit.
CREATE OR REPLACE FUNCTION townflow_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('townflow_outbox', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION townflow_outbox_notify();
