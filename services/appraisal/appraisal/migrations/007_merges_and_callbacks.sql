-- Issue #18 (SPEC §10): 重复件 and 回访 as facts. A task merged into another matter's stands out
-- of every rate and earns nothing, while its latest merge event says it is merged (`merge_at`
-- orders them; of two at one moment the one handled last wins). A closure check passed closes a
-- task; a callback's `reopened` sends it back (重办), which counts against resolution like a
-- failed check, and once per task in 重办率 = reopened ÷ closed. A matter's callback rating is kept
-- apart from the citizen's own, which always wins: the same figures in any arrival order.
ALTER TABLE task_facts
    ADD COLUMN merged        boolean NOT NULL DEFAULT false,
    ADD COLUMN merge_at      timestamptz,
    ADD COLUMN merge_event   uuid,
    ADD COLUMN passed_checks integer NOT NULL DEFAULT 0,
    ADD COLUMN reopens       integer NOT NULL DEFAULT 0,
    ADD COLUMN reopen_event  uuid,
    ADD COLUMN c_closed      integer NOT NULL DEFAULT 0,
    ADD COLUMN c_reopened    integer NOT NULL DEFAULT 0;

ALTER TABLE matter_facts
    ADD COLUMN callback_rating text,
    ADD COLUMN callback_at     timestamptz,
    ADD COLUMN callback_event  uuid;

ALTER TABLE subject_totals
    ADD COLUMN closed   integer NOT NULL DEFAULT 0,
    ADD COLUMN reopened integer NOT NULL DEFAULT 0;

-- 006's sum, with the two new counts.
CREATE OR REPLACE FUNCTION add_task_contributions(gone task_facts[], came task_facts[])
RETURNS void LANGUAGE sql AS $$
INSERT INTO subject_totals AS s (town_code, subject_type, subject_id, period, dispatched, responded, resolved,
                                 completed, reworked, extended, rated, satisfied, overdue, escalated,
                                 escalated_red, closed, reopened, points)
SELECT t.town_code, k.subject_type, k.subject_id, t.period,
       sum(t.sign * t.c_dispatched), sum(t.sign * t.c_responded), sum(t.sign * t.c_resolved),
       sum(t.sign * t.c_completed), sum(t.sign * t.c_reworked), sum(t.sign * t.c_extended),
       sum(t.sign * t.c_rated), sum(t.sign * t.c_satisfied), sum(t.sign * t.c_overdue),
       sum(t.sign * t.c_escalated), sum(t.sign * t.c_escalated_red),
       sum(t.sign * t.c_closed), sum(t.sign * t.c_reopened),
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
    reopened = s.reopened + EXCLUDED.reopened, points = s.points + EXCLUDED.points
WHERE (EXCLUDED.dispatched, EXCLUDED.responded, EXCLUDED.resolved, EXCLUDED.completed, EXCLUDED.reworked,
       EXCLUDED.extended, EXCLUDED.rated, EXCLUDED.satisfied, EXCLUDED.overdue, EXCLUDED.escalated,
       EXCLUDED.escalated_red, EXCLUDED.closed, EXCLUDED.reopened, EXCLUDED.points)
      IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0::numeric)
$$;

-- The view again (a view's columns are fixed when it is made): the task's new facts, and the
-- matter's rating as the rules read it — the citizen's own, else the latest reached callback's.
DROP VIEW task_fact_rows;
CREATE VIEW task_fact_rows AS
SELECT t.*,
       CASE WHEN m.rating IS NOT NULL THEN m.rating ELSE m.callback_rating END AS rating,
       CASE WHEN m.rating IS NOT NULL THEN m.rated_event ELSE m.callback_event END AS rated_event,
       EXISTS (SELECT 1 FROM task_facts n WHERE n.town_code = t.town_code AND n.redispatch_of = t.task_id
               AND n.dispatched_event IS NOT NULL) AS superseded,
       coalesce(t.accepted_at <= t.respond_by
                OR (t.accepted_at IS NULL AND t.first_completed_at <= t.respond_by), false) AS responded
FROM task_facts t LEFT JOIN matter_facts m ON m.town_code = t.town_code AND m.request_id = t.request_id
WHERE t.dispatched_event IS NOT NULL;
