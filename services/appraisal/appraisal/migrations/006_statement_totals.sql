-- Issue #16: each subject's month is kept current as events arrive, one way. A consumer batch
-- writes all its tasks' contributions in one statement; the row triggers of 003/004 then ran a
-- plpgsql loop of up to eight upserts per task. Statement triggers over the transition tables
-- add the whole statement's change to subject_totals in one grouped upsert instead — still
-- whatever statement changes task_facts or inspection_points, so the totals cannot drift from
-- the contributions they sum.
DROP TRIGGER IF EXISTS task_facts_to_totals ON task_facts;
DROP TRIGGER IF EXISTS inspection_points_to_totals ON inspection_points;
DROP FUNCTION IF EXISTS task_facts_to_totals();
DROP FUNCTION IF EXISTS inspection_points_to_totals();
DROP FUNCTION IF EXISTS add_to_subject_totals(text, text, text[][], integer[], numeric);

-- Every subject of every dispatched task gets its row, zero or not, so the subjects a month
-- lists do not depend on how events fell into batches (a task returned and redispatched within
-- one batch never contributes, yet its first assignee is listed, as a replay one by one lists it).
-- Rows that add nothing are inserted when missing and otherwise left alone (no dead versions).
CREATE FUNCTION add_task_contributions(gone task_facts[], came task_facts[])
RETURNS void LANGUAGE sql AS $$
INSERT INTO subject_totals AS s (town_code, subject_type, subject_id, period, dispatched, responded, resolved,
                                 completed, reworked, extended, rated, satisfied, overdue, escalated,
                                 escalated_red, points)
SELECT t.town_code, k.subject_type, k.subject_id, t.period,
       sum(t.sign * t.c_dispatched), sum(t.sign * t.c_responded), sum(t.sign * t.c_resolved),
       sum(t.sign * t.c_completed), sum(t.sign * t.c_reworked), sum(t.sign * t.c_extended),
       sum(t.sign * t.c_rated), sum(t.sign * t.c_satisfied), sum(t.sign * t.c_overdue),
       sum(t.sign * t.c_escalated), sum(t.sign * t.c_escalated_red),
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
    escalated_red = s.escalated_red + EXCLUDED.escalated_red, points = s.points + EXCLUDED.points
WHERE (EXCLUDED.dispatched, EXCLUDED.responded, EXCLUDED.resolved, EXCLUDED.completed, EXCLUDED.reworked,
       EXCLUDED.extended, EXCLUDED.rated, EXCLUDED.satisfied, EXCLUDED.overdue, EXCLUDED.escalated,
       EXCLUDED.escalated_red, EXCLUDED.points) IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0::numeric)
$$;

-- (A transition table's rows are anonymous records: ROW(x.*) makes them the table's type again.)
CREATE FUNCTION task_facts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_task_contributions('{}', ARRAY(SELECT ROW(n.*)::task_facts FROM new_rows n));
    RETURN NULL;
END $$;

CREATE FUNCTION task_facts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_task_contributions(ARRAY(SELECT ROW(o.*)::task_facts FROM old_rows o), ARRAY(SELECT ROW(n.*)::task_facts FROM new_rows n));
    RETURN NULL;
END $$;

CREATE FUNCTION task_facts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_task_contributions(ARRAY(SELECT ROW(o.*)::task_facts FROM old_rows o), '{}');
    RETURN NULL;
END $$;

CREATE TRIGGER task_facts_inserted AFTER INSERT ON task_facts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_facts_inserted();
CREATE TRIGGER task_facts_updated AFTER UPDATE ON task_facts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_facts_updated();
CREATE TRIGGER task_facts_deleted AFTER DELETE ON task_facts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_facts_deleted();

-- An inspection's points per officer (an officer of no known module has no module subject).
CREATE FUNCTION add_inspection_points(came inspection_points[])
RETURNS void LANGUAGE sql AS $$
INSERT INTO subject_totals AS s (town_code, subject_type, subject_id, period, points)
SELECT n.town_code, k.subject_type, k.subject_id, n.period, sum(n.points::numeric)
FROM unnest(came) AS n
CROSS JOIN LATERAL (VALUES ('staff', n.staff_id), ('module', n.module),
                           ('seconded_unit', n.seconded_unit)) AS k (subject_type, subject_id)
WHERE k.subject_id IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
ON CONFLICT (town_code, subject_type, subject_id, period) DO UPDATE SET points = s.points + EXCLUDED.points
$$;

CREATE FUNCTION inspection_points_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_inspection_points(ARRAY(SELECT ROW(n.*)::inspection_points FROM new_rows n));
    RETURN NULL;
END $$;

CREATE TRIGGER inspection_points_inserted AFTER INSERT ON inspection_points REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION inspection_points_inserted();

-- A batch writes each of its tasks two or three times (facts, then contributions). The four
-- per-subject indexes served SUMs over a subject's tasks, which nothing runs any more (a ledger
-- reads its town's month by one index); and room on the page keeps the updates HOT.
DROP INDEX task_facts_staff, task_facts_module, task_facts_village, task_facts_seconded;
CREATE INDEX task_facts_month ON task_facts (town_code, period);
ALTER TABLE task_facts SET (fillfactor = 70);

-- A read is one town's one month: found by the index, whatever other months and towns hold.
CREATE INDEX subject_totals_month ON subject_totals (town_code, period);

-- The totals again from the contributions, with the rows of zero subjects the rule above keeps;
-- a month of a town at a time, so a county's years never sit in memory at once.
DELETE FROM subject_totals;
SELECT add_task_contributions('{}', ARRAY(SELECT t FROM task_facts t WHERE t.town_code = m.town_code
                                                                      AND t.period = m.period))
FROM (SELECT DISTINCT town_code, period FROM task_facts WHERE period IS NOT NULL) AS m;
SELECT add_inspection_points(ARRAY(SELECT p FROM inspection_points p WHERE p.town_code = m.town_code
                                                                      AND p.period = m.period))
FROM (SELECT DISTINCT town_code, period FROM inspection_points) AS m;

-- A task's facts as the rules read them, in one place for every reader: whether it stands (not
-- redispatched away) and whether it was answered in time.
CREATE VIEW task_fact_rows AS
SELECT t.*, m.rating, m.rated_event,
       EXISTS (SELECT 1 FROM task_facts n WHERE n.town_code = t.town_code AND n.redispatch_of = t.task_id
               AND n.dispatched_event IS NOT NULL) AS superseded,
       coalesce(t.accepted_at <= t.respond_by
                OR (t.accepted_at IS NULL AND t.first_completed_at <= t.respond_by), false) AS responded
FROM task_facts t LEFT JOIN matter_facts m ON m.town_code = t.town_code AND m.request_id = t.request_id
WHERE t.dispatched_event IS NOT NULL;
