-- 督办 reads only what is due: each open task keeps when its next supervision level falls due
-- (NULL once every level is sent), so the loop takes due tasks in due order from an index instead
-- of scanning every open task, and a new task's reminder never waits behind older ones.
ALTER TABLE tasks ADD COLUMN next_supervision_at timestamptz;

-- Existing open tasks with a level still to send are marked due at once: the moments depend on
-- the town's rules.yaml, which SQL cannot read, so the loop's first pass computes each one and
-- publishes whatever was really due.
UPDATE tasks t SET next_supervision_at = t.window_start
 WHERE t.status IN ('dispatched', 'accepted', 'rework')
   AND (SELECT count(*) FROM supervisions s WHERE s.task_id = t.task_id) < 3;

-- Only open tasks: completed, closed, returned and redispatched ones drop out of the index.
CREATE INDEX tasks_next_supervision ON tasks (next_supervision_at)
 WHERE status IN ('dispatched', 'accepted', 'rework');
