-- 重复件 (SPEC §10): a matter merged into another closes its task as `merged` (no points, out of
-- rates) until the merge is undone; the task remembers the status it had, to take it back.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS merged_into uuid;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS merged_at timestamptz;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS merged_from_status text;

-- The latest merge state of each matter, as intake published it. A merge can reach dispatch
-- before the filing it concerns (two topics, no order between them): the task is then closed as
-- merged as soon as it is created.
CREATE TABLE IF NOT EXISTS request_merges (
    request_id      uuid PRIMARY KEY,
    town_code       text NOT NULL,
    into_request_id uuid NOT NULL,
    merged          boolean NOT NULL,
    at              timestamptz NOT NULL,
    event_id        uuid NOT NULL
);

-- 回访 (SPEC §10): the command centre's callbacks after closure; an unsatisfied one reopens the
-- task (重办) as rework for the same assignee, counted in reopen_count.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS reopen_count integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS called_back boolean NOT NULL DEFAULT false;
CREATE TABLE IF NOT EXISTS callbacks (
    id        bigserial PRIMARY KEY,
    town_code text NOT NULL,
    task_id   uuid NOT NULL REFERENCES tasks (task_id),
    reached   boolean NOT NULL,
    rating    text,
    note      text NOT NULL,
    by        text NOT NULL,
    at        timestamptz NOT NULL,
    reopened  boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_of_task ON callbacks (task_id, at);
