-- 挂起 (issue #27): a task suspended at least once counts in 挂起率 = suspended ÷ dispatched, per staff,
-- module, village and seconded unit like the other rates. Only additions: the previous release's
-- replicas write task_facts without these columns (their defaults), and their contributions keep
-- c_suspended as it is, so totals stay the sums of the tasks' contributions.
ALTER TABLE task_facts
    ADD COLUMN IF NOT EXISTS suspensions      integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS suspended_event  uuid,
    ADD COLUMN IF NOT EXISTS c_suspended      integer NOT NULL DEFAULT 0;

ALTER TABLE subject_totals
    ADD COLUMN IF NOT EXISTS suspended integer NOT NULL DEFAULT 0;

-- 007's sum, with the new count.
CREATE OR REPLACE FUNCTION add_task_contributions(gone task_facts[], came task_facts[])
RETURNS void LANGUAGE sql AS $$
INSERT INTO subject_totals AS s (town_code, subject_type, subject_id, period, dispatched, responded, resolved,
                                 completed, reworked, extended, rated, satisfied, overdue, escalated,
                                 escalated_red, closed, reopened, suspended, points)
SELECT t.town_code, k.subject_type, k.subject_id, t.period,
       sum(t.sign * t.c_dispatched), sum(t.sign * t.c_responded), sum(t.sign * t.c_resolved),
       sum(t.sign * t.c_completed), sum(t.sign * t.c_reworked), sum(t.sign * t.c_extended),
       sum(t.sign * t.c_rated), sum(t.sign * t.c_satisfied), sum(t.sign * t.c_overdue),
       sum(t.sign * t.c_escalated), sum(t.sign * t.c_escalated_red),
       sum(t.sign * t.c_closed), sum(t.sign * t.c_reopened), sum(t.sign * t.c_suspended),
       sum(t.sign * t.c_points::numeric)  -- numeric: the order of addition cannot show
FROM (SELECT -1 AS sign, * FROM unnest(gone) UNION ALL SELECT 1, * FROM unnest(came)) AS t
CROSS JOIN LATERAL (VALUES ('staff', t.assignee), ('module', t.module), ('village', t.village),
                           ('seconded_unit', t.seconded_unit)) AS k (subject_type, subject_id)
WHERE t.period IS NOT NULL AND k.subject_id IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4  -- one lock order for every writer: two replicas' batches cannot deadlock
ON CONFLICT (town_code, subject_type, subject_id, period) DO UPDATE SET
    dispatched = s.dispatched + EXCLUDED.dispatched, responded = s.responded + EXCLUDED.responded,
    resolved = s.resolved + EXCLUDED.resolved, completed = s.completed + EXCLUDED.completed,
    reworked = s.reworked + EXCLUDED.reworked, extended = s.extended + EXCLUDED.extended,
    rated = s.rated + EXCLUDED.rated, satisfied = s.satisfied + EXCLUDED.satisfied,
    overdue = s.overdue + EXCLUDED.overdue, escalated = s.escalated + EXCLUDED.escalated,
    escalated_red = s.escalated_red + EXCLUDED.escalated_red, closed = s.closed + EXCLUDED.closed,
    reopened = s.reopened + EXCLUDED.reopened, suspended = s.suspended + EXCLUDED.suspended,
    points = s.points + EXCLUDED.points
WHERE (EXCLUDED.dispatched, EXCLUDED.responded, EXCLUDED.resolved, EXCLUDED.completed, EXCLUDED.reworked,
       EXCLUDED.extended, EXCLUDED.rated, EXCLUDED.satisfied, EXCLUDED.overdue, EXCLUDED.escalated,
       EXCLUDED.escalated_red, EXCLUDED.closed, EXCLUDED.reopened, EXCLUDED.suspended, EXCLUDED.points)
      IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0::numeric)
$$;

-- The view keeps its columns in their order (the previous release reads it) and gains the
-- suspension count at the end: CREATE OR REPLACE may only add columns there, so the task's columns
-- are listed as 007 expanded `t.*`.
CREATE OR REPLACE VIEW task_fact_rows AS
SELECT t.task_id, t.request_id, t.dispatched_event, t.period, t.assignee, t.post, t.module, t.village,
       t.seconded_unit, t.item_code, t.colour, t.difficulty, t.dispatched_at, t.respond_by, t.resolve_by,
       t.redispatch_of, t.accepted_at, t.accepted_event, t.completions, t.first_completed_at,
       t.last_completed_at, t.last_on_time, t.completed_event, t.failed_checks, t.rework_event, t.extensions,
       t.extended_event, t.overdue_event, t.escalated_event, t.returned_invalid, t.invalid_return_event,
       t.c_dispatched, t.c_responded, t.c_resolved, t.c_completed, t.c_reworked, t.c_extended, t.c_rated,
       t.c_satisfied, t.c_overdue, t.c_escalated, t.c_escalated_red, t.c_points, t.town_code, t.merged,
       t.merge_at, t.merge_event, t.passed_checks, t.reopens, t.reopen_event, t.c_closed, t.c_reopened,
       CASE WHEN m.rating IS NOT NULL THEN m.rating ELSE m.callback_rating END AS rating,
       CASE WHEN m.rating IS NOT NULL THEN m.rated_event ELSE m.callback_event END AS rated_event,
       EXISTS (SELECT 1 FROM task_facts n WHERE n.town_code = t.town_code AND n.redispatch_of = t.task_id
               AND n.dispatched_event IS NOT NULL) AS superseded,
       coalesce(t.accepted_at <= t.respond_by
                OR (t.accepted_at IS NULL AND t.first_completed_at <= t.respond_by), false) AS responded,
       t.suspensions, t.suspended_event, t.c_suspended
FROM task_facts t LEFT JOIN matter_facts m ON m.town_code = t.town_code AND m.request_id = t.request_id
WHERE t.dispatched_event IS NOT NULL;
