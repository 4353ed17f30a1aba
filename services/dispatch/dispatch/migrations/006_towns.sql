-- One deployment serves every town of a county (SPEC §8): every row belongs to a town. Rows
-- written before this change are the town's that the database served: the one town of a
-- one-town deployment, or TOWNFLOW_LEGACY_TOWN_CODE in a county (`townflow.default_town`).
ALTER TABLE matters ADD COLUMN IF NOT EXISTS town_code text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS town_code text;
ALTER TABLE supervisions ADD COLUMN IF NOT EXISTS town_code text;
ALTER TABLE extensions ADD COLUMN IF NOT EXISTS town_code text;
ALTER TABLE off_post ADD COLUMN IF NOT EXISTS town_code text;

DO $$ BEGIN
  IF current_setting('townflow.default_town', true) = '' AND (
       EXISTS (SELECT 1 FROM matters WHERE town_code IS NULL)
    OR EXISTS (SELECT 1 FROM tasks WHERE town_code IS NULL)
    OR EXISTS (SELECT 1 FROM off_post WHERE town_code IS NULL)) THEN
    RAISE EXCEPTION 'matters, tasks and off-post registrations written before the county change have no town: set TOWNFLOW_LEGACY_TOWN_CODE';
  END IF;
END $$;

UPDATE matters SET town_code = current_setting('townflow.default_town') WHERE town_code IS NULL;
UPDATE tasks SET town_code = current_setting('townflow.default_town') WHERE town_code IS NULL;
UPDATE off_post SET town_code = current_setting('townflow.default_town') WHERE town_code IS NULL;
-- A supervision or an extension is its task's.
UPDATE supervisions s SET town_code = t.town_code FROM tasks t WHERE s.task_id = t.task_id AND s.town_code IS NULL;
UPDATE extensions e SET town_code = t.town_code FROM tasks t WHERE e.task_id = t.task_id AND e.town_code IS NULL;

ALTER TABLE matters ALTER COLUMN town_code SET NOT NULL;
ALTER TABLE tasks ALTER COLUMN town_code SET NOT NULL;
ALTER TABLE supervisions ALTER COLUMN town_code SET NOT NULL;
ALTER TABLE extensions ALTER COLUMN town_code SET NOT NULL;
ALTER TABLE off_post ALTER COLUMN town_code SET NOT NULL;

-- Ids of matters, tasks and extensions are UUIDs, unique in the county; a staff id is unique only
-- within its town, so everything looked up by staff leads with the town.
DROP INDEX IF EXISTS tasks_open_by_assignee;
CREATE INDEX tasks_open_by_assignee ON tasks (town_code, assignee) WHERE status IN ('dispatched', 'accepted', 'rework');
DROP INDEX IF EXISTS off_post_staff;
CREATE INDEX off_post_staff ON off_post (town_code, staff_id, from_at, to_at);
-- The board and the task lists read one town (or a few).
DROP INDEX IF EXISTS tasks_supervision;
CREATE INDEX tasks_supervision ON tasks (town_code, status, resolve_by);
CREATE INDEX tasks_of_town ON tasks (town_code, dispatched_at DESC);
