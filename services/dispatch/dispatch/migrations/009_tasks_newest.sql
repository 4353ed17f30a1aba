-- Issue #16: a county role's task list (every town's, newest first) walks the newest tasks by time
-- and stops at the page, whatever years the county holds; one town's list has tasks_of_town.
CREATE INDEX IF NOT EXISTS tasks_newest ON tasks (dispatched_at DESC);
