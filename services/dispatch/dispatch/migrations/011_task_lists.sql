-- Issue #27: the task lists' search and filters read one town's tasks newest first. Each filter
-- a person narrows by often has an index that starts with the town, holds the filter's column
-- and keeps the order, so a page stops after its rows and the total counts only the matches:
-- a county-year loaded (60 towns, 780,000 tasks), every read stays within 100 ms
-- (tests/database/test_task_lists.py checks the plans). Colour (three values) and the phase (one
-- of two) narrow too little to be worth an index: the town's own (tasks_of_town) serves them.
CREATE INDEX IF NOT EXISTS tasks_of_town_by_status ON tasks (town_code, status, dispatched_at DESC);
CREATE INDEX IF NOT EXISTS tasks_of_town_by_assignee ON tasks (town_code, assignee, dispatched_at DESC);
CREATE INDEX IF NOT EXISTS tasks_of_town_by_village ON tasks (town_code, village, dispatched_at DESC);
CREATE INDEX IF NOT EXISTS tasks_of_town_by_item ON tasks (town_code, item_code, dispatched_at DESC);
-- Reopened tasks (重办) are few: a partial index holds only them.
CREATE INDEX IF NOT EXISTS tasks_of_town_reopened ON tasks (town_code, dispatched_at DESC) WHERE reopen_count > 0;
-- A ticket number looked up by its beginning (it starts with the town's code), in any town.
CREATE INDEX IF NOT EXISTS tasks_by_ticket ON tasks (ticket_no text_pattern_ops);
-- The extension requests waiting for the command centre, by town.
CREATE INDEX IF NOT EXISTS extensions_pending_of_town ON extensions (town_code, requested_at) WHERE status = 'pending';
