-- 挂起 (issue #27): a post holder asks to suspend an open task while waiting on the citizen (补正材料)
-- or a third party; the command centre approves or refuses; while suspended the task's status is
-- `suspended` (no deadline, no supervision) and on resumption it gets back the working time it had left.
-- Everything of a suspension lives in this table, none in `tasks`: the previous release answers a task
-- with every column of its row into a closed response model, so a new column there would fail its
-- reads. The new status is safe for it: it supervises, counts as open, overdue or mergeable only the
-- statuses it lists, and refuses any action from a status it does not know (409 task.status_forbids).
CREATE TABLE IF NOT EXISTS suspensions (
    suspension_id   uuid PRIMARY KEY,
    town_code       text NOT NULL,
    task_id         uuid NOT NULL REFERENCES tasks (task_id),
    category        text NOT NULL,  -- awaiting_citizen, awaiting_third_party
    reason          text NOT NULL,
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending',  -- pending, refused, suspended, resumed
    decided_by      text,
    decided_at      timestamptz,
    note            text,
    from_status     text,         -- the task's status when suspended, taken back on resumption
    resolve_by_then timestamptz,  -- the deadline it had when suspended
    working_left    interval,     -- the working time then left before it
    resumed_by      text,
    resumed_at      timestamptz,
    resolve_by_after timestamptz  -- the deadline it got on resumption
);
-- One request at a time per task: pending, or approved and not yet resumed.
CREATE UNIQUE INDEX IF NOT EXISTS suspensions_one_open ON suspensions (task_id) WHERE status IN ('pending', 'suspended');
-- The command centre's list of pending requests of its town.
CREATE INDEX IF NOT EXISTS suspensions_pending ON suspensions (town_code, requested_at) WHERE status = 'pending';
