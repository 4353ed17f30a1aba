-- Running totals per subject and month: a subject's figures are one row instead of a SUM over
-- all its tasks (which grew with the month's volume). Triggers keep them equal to those sums —
-- the same rows, added in any order (points as numeric, so the order of addition cannot show) —
-- whatever statement changes task_facts or inspection_points.
CREATE TABLE subject_totals (
    subject_type  text    NOT NULL,
    subject_id    text    NOT NULL,
    period        text    NOT NULL,
    dispatched    integer NOT NULL DEFAULT 0,
    responded     integer NOT NULL DEFAULT 0,
    resolved      integer NOT NULL DEFAULT 0,
    completed     integer NOT NULL DEFAULT 0,
    reworked      integer NOT NULL DEFAULT 0,
    extended      integer NOT NULL DEFAULT 0,
    rated         integer NOT NULL DEFAULT 0,
    satisfied     integer NOT NULL DEFAULT 0,
    overdue       integer NOT NULL DEFAULT 0,
    escalated     integer NOT NULL DEFAULT 0,
    escalated_red integer NOT NULL DEFAULT 0,
    points        numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_type, subject_id, period)
);

CREATE FUNCTION add_to_subject_totals(p text, subjects text[][], d integer[], pts numeric)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    IF p IS NULL THEN
        RETURN;  -- not dispatched yet: no month, in no subject's sum
    END IF;
    IF pts = 0 AND NOT EXISTS (SELECT 1 FROM unnest(d) x WHERE x <> 0) THEN
        RETURN;
    END IF;
    FOR i IN 1 .. array_length(subjects, 1) LOOP
        CONTINUE WHEN subjects[i][2] IS NULL;
        INSERT INTO subject_totals (subject_type, subject_id, period, dispatched, responded, resolved, completed, reworked, extended, rated, satisfied, overdue, escalated, escalated_red, points)
        VALUES (subjects[i][1], subjects[i][2], p, d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], pts)
        ON CONFLICT (subject_type, subject_id, period) DO UPDATE SET
            dispatched = subject_totals.dispatched + EXCLUDED.dispatched,
            responded = subject_totals.responded + EXCLUDED.responded,
            resolved = subject_totals.resolved + EXCLUDED.resolved,
            completed = subject_totals.completed + EXCLUDED.completed,
            reworked = subject_totals.reworked + EXCLUDED.reworked,
            extended = subject_totals.extended + EXCLUDED.extended,
            rated = subject_totals.rated + EXCLUDED.rated,
            satisfied = subject_totals.satisfied + EXCLUDED.satisfied,
            overdue = subject_totals.overdue + EXCLUDED.overdue,
            escalated = subject_totals.escalated + EXCLUDED.escalated,
            escalated_red = subject_totals.escalated_red + EXCLUDED.escalated_red,
            points = subject_totals.points + EXCLUDED.points;
    END LOOP;
END $$;

CREATE FUNCTION task_facts_to_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.period = OLD.period AND NEW.assignee IS NOT DISTINCT FROM OLD.assignee
            AND NEW.module IS NOT DISTINCT FROM OLD.module AND NEW.village IS NOT DISTINCT FROM OLD.village
            AND NEW.seconded_unit IS NOT DISTINCT FROM OLD.seconded_unit THEN
        PERFORM add_to_subject_totals(NEW.period,
            ARRAY[['staff', NEW.assignee], ['module', NEW.module], ['village', NEW.village],
                  ['seconded_unit', NEW.seconded_unit]],
            ARRAY[NEW.c_dispatched - OLD.c_dispatched, NEW.c_responded - OLD.c_responded, NEW.c_resolved - OLD.c_resolved, NEW.c_completed - OLD.c_completed, NEW.c_reworked - OLD.c_reworked, NEW.c_extended - OLD.c_extended, NEW.c_rated - OLD.c_rated, NEW.c_satisfied - OLD.c_satisfied, NEW.c_overdue - OLD.c_overdue, NEW.c_escalated - OLD.c_escalated, NEW.c_escalated_red - OLD.c_escalated_red], NEW.c_points::numeric - OLD.c_points::numeric);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM add_to_subject_totals(OLD.period,
            ARRAY[['staff', OLD.assignee], ['module', OLD.module], ['village', OLD.village],
                  ['seconded_unit', OLD.seconded_unit]],
            ARRAY[-OLD.c_dispatched, -OLD.c_responded, -OLD.c_resolved, -OLD.c_completed, -OLD.c_reworked, -OLD.c_extended, -OLD.c_rated, -OLD.c_satisfied, -OLD.c_overdue, -OLD.c_escalated, -OLD.c_escalated_red], -OLD.c_points::numeric);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM add_to_subject_totals(NEW.period,
            ARRAY[['staff', NEW.assignee], ['module', NEW.module], ['village', NEW.village],
                  ['seconded_unit', NEW.seconded_unit]],
            ARRAY[NEW.c_dispatched, NEW.c_responded, NEW.c_resolved, NEW.c_completed, NEW.c_reworked, NEW.c_extended, NEW.c_rated, NEW.c_satisfied, NEW.c_overdue, NEW.c_escalated, NEW.c_escalated_red], NEW.c_points::numeric);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER task_facts_to_totals AFTER INSERT OR UPDATE OR DELETE ON task_facts
    FOR EACH ROW EXECUTE FUNCTION task_facts_to_totals();

CREATE FUNCTION inspection_points_to_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_to_subject_totals(NEW.period,
        ARRAY[['staff', NEW.staff_id], ['module', NEW.module], ['seconded_unit', NEW.seconded_unit]],
        ARRAY[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], NEW.points::numeric);
    RETURN NULL;
END $$;

CREATE TRIGGER inspection_points_to_totals AFTER INSERT ON inspection_points
    FOR EACH ROW EXECUTE FUNCTION inspection_points_to_totals();

-- What the months already hold, for a database upgraded with data in it.
INSERT INTO subject_totals (subject_type, subject_id, period, dispatched, responded, resolved, completed, reworked, extended, rated, satisfied, overdue, escalated, escalated_red, points)
SELECT subject_type, subject_id, period, sum(c_dispatched), sum(c_responded), sum(c_resolved), sum(c_completed), sum(c_reworked), sum(c_extended), sum(c_rated), sum(c_satisfied), sum(c_overdue), sum(c_escalated), sum(c_escalated_red), sum(points)
FROM (
    SELECT 'staff' AS subject_type, assignee AS subject_id, period, c_dispatched, c_responded, c_resolved, c_completed, c_reworked, c_extended, c_rated, c_satisfied, c_overdue, c_escalated, c_escalated_red, c_points::numeric AS points FROM task_facts WHERE assignee IS NOT NULL
    UNION ALL SELECT 'module', module, period, c_dispatched, c_responded, c_resolved, c_completed, c_reworked, c_extended, c_rated, c_satisfied, c_overdue, c_escalated, c_escalated_red, c_points::numeric FROM task_facts WHERE module IS NOT NULL
    UNION ALL SELECT 'village', village, period, c_dispatched, c_responded, c_resolved, c_completed, c_reworked, c_extended, c_rated, c_satisfied, c_overdue, c_escalated, c_escalated_red, c_points::numeric FROM task_facts WHERE village IS NOT NULL
    UNION ALL SELECT 'seconded_unit', seconded_unit, period, c_dispatched, c_responded, c_resolved, c_completed, c_reworked, c_extended, c_rated, c_satisfied, c_overdue, c_escalated, c_escalated_red, c_points::numeric FROM task_facts WHERE seconded_unit IS NOT NULL
    UNION ALL SELECT 'staff', staff_id, period, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, points::numeric FROM inspection_points
    UNION ALL SELECT 'module', module, period, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, points::numeric FROM inspection_points WHERE module IS NOT NULL
    UNION ALL SELECT 'seconded_unit', seconded_unit, period, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, points::numeric FROM inspection_points WHERE seconded_unit IS NOT NULL
) AS contributions
WHERE period IS NOT NULL
GROUP BY subject_type, subject_id, period;
