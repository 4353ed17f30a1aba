-- Issue #27: the answer to the citizen (答复) given when a task is completed. A table of its own,
-- not a column of `tasks`: the previous release reads its tasks with `SELECT *` into closed views,
-- so a new column there would break it while both run side by side. One row per task: completing
-- it again after rework replaces the answer.
CREATE TABLE IF NOT EXISTS task_replies (
    task_id   uuid PRIMARY KEY REFERENCES tasks (task_id),
    town_code text NOT NULL,
    reply     text NOT NULL,
    at        timestamptz NOT NULL
);
