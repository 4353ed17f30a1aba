-- SPEC §8: one deployment serves every town of a county, so every record belongs to a town. A
-- subject is (town, subject_type, subject_id): staff ids, modules and villages repeat across towns
-- with different meanings. Rows written before the change get the one town they can belong to
-- (db.migrate's townflow.default_town); a county upgraded from a one-town database must name it.
DO $$
DECLARE
    t text;
    old_town text := coalesce(current_setting('townflow.default_town', true), '');
    unplaced boolean;
BEGIN
    FOREACH t IN ARRAY ARRAY['task_facts', 'matter_facts', 'inspection_facts', 'seconded_scores', 'alerts',
                             'score_cache', 'inspection_points', 'subject_totals'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS town_code text', t);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE town_code IS NULL)', t) INTO unplaced;
        IF unplaced AND old_town = '' THEN
            RAISE EXCEPTION '% written before the county change have no town: set TOWNFLOW_LEGACY_TOWN_CODE', t;
        END IF;
        EXECUTE format('UPDATE %I SET town_code = $1 WHERE town_code IS NULL', t) USING old_town;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN town_code SET NOT NULL', t);
    END LOOP;
END $$;

ALTER TABLE task_facts DROP CONSTRAINT task_facts_pkey, ADD PRIMARY KEY (town_code, task_id);
ALTER TABLE matter_facts DROP CONSTRAINT matter_facts_pkey, ADD PRIMARY KEY (town_code, request_id);
ALTER TABLE inspection_facts DROP CONSTRAINT inspection_facts_pkey, ADD PRIMARY KEY (town_code, inspection_id);
ALTER TABLE seconded_scores DROP CONSTRAINT seconded_scores_pkey, ADD PRIMARY KEY (town_code, unit, period);
ALTER TABLE alerts DROP CONSTRAINT alerts_pkey, ADD PRIMARY KEY (town_code, staff_id, period, level);
ALTER TABLE score_cache DROP CONSTRAINT score_cache_pkey, ADD PRIMARY KEY (town_code, subject_type, subject_id, period);
ALTER TABLE inspection_points DROP CONSTRAINT inspection_points_pkey, ADD PRIMARY KEY (town_code, inspection_id, staff_id);
ALTER TABLE subject_totals DROP CONSTRAINT subject_totals_pkey, ADD PRIMARY KEY (town_code, subject_type, subject_id, period);

DROP INDEX task_facts_request, task_facts_redispatch, task_facts_staff, task_facts_module, task_facts_village,
           task_facts_seconded, inspection_facts_period, inspection_points_period;
CREATE INDEX task_facts_request ON task_facts (town_code, request_id);
CREATE INDEX task_facts_redispatch ON task_facts (town_code, redispatch_of);
CREATE INDEX task_facts_staff ON task_facts (town_code, period, assignee);
CREATE INDEX task_facts_module ON task_facts (town_code, period, module);
CREATE INDEX task_facts_village ON task_facts (town_code, period, village);
CREATE INDEX task_facts_seconded ON task_facts (town_code, period, seconded_unit);
CREATE INDEX inspection_facts_period ON inspection_facts (town_code, period);
CREATE INDEX inspection_points_period ON inspection_points (town_code, period);
CREATE INDEX alerts_period ON alerts (town_code, period);

-- The running totals of migration 003, now per town.
DROP TRIGGER task_facts_to_totals ON task_facts;
DROP TRIGGER inspection_points_to_totals ON inspection_points;
DROP FUNCTION task_facts_to_totals();
DROP FUNCTION inspection_points_to_totals();
DROP FUNCTION add_to_subject_totals(text, text[][], integer[], numeric);

CREATE FUNCTION add_to_subject_totals(town text, p text, subjects text[][], d integer[], pts numeric)
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
        INSERT INTO subject_totals (town_code, subject_type, subject_id, period, dispatched, responded, resolved, completed, reworked, extended, rated, satisfied, overdue, escalated, escalated_red, points)
        VALUES (town, subjects[i][1], subjects[i][2], p, d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], pts)
        ON CONFLICT (town_code, subject_type, subject_id, period) DO UPDATE SET
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
    IF TG_OP = 'UPDATE' AND NEW.town_code = OLD.town_code AND NEW.period = OLD.period
            AND NEW.assignee IS NOT DISTINCT FROM OLD.assignee
            AND NEW.module IS NOT DISTINCT FROM OLD.module AND NEW.village IS NOT DISTINCT FROM OLD.village
            AND NEW.seconded_unit IS NOT DISTINCT FROM OLD.seconded_unit THEN
        PERFORM add_to_subject_totals(NEW.town_code, NEW.period,
            ARRAY[['staff', NEW.assignee], ['module', NEW.module], ['village', NEW.village],
                  ['seconded_unit', NEW.seconded_unit]],
            ARRAY[NEW.c_dispatched - OLD.c_dispatched, NEW.c_responded - OLD.c_responded, NEW.c_resolved - OLD.c_resolved, NEW.c_completed - OLD.c_completed, NEW.c_reworked - OLD.c_reworked, NEW.c_extended - OLD.c_extended, NEW.c_rated - OLD.c_rated, NEW.c_satisfied - OLD.c_satisfied, NEW.c_overdue - OLD.c_overdue, NEW.c_escalated - OLD.c_escalated, NEW.c_escalated_red - OLD.c_escalated_red], NEW.c_points::numeric - OLD.c_points::numeric);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM add_to_subject_totals(OLD.town_code, OLD.period,
            ARRAY[['staff', OLD.assignee], ['module', OLD.module], ['village', OLD.village],
                  ['seconded_unit', OLD.seconded_unit]],
            ARRAY[-OLD.c_dispatched, -OLD.c_responded, -OLD.c_resolved, -OLD.c_completed, -OLD.c_reworked, -OLD.c_extended, -OLD.c_rated, -OLD.c_satisfied, -OLD.c_overdue, -OLD.c_escalated, -OLD.c_escalated_red], -OLD.c_points::numeric);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM add_to_subject_totals(NEW.town_code, NEW.period,
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
    PERFORM add_to_subject_totals(NEW.town_code, NEW.period,
        ARRAY[['staff', NEW.staff_id], ['module', NEW.module], ['seconded_unit', NEW.seconded_unit]],
        ARRAY[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], NEW.points::numeric);
    RETURN NULL;
END $$;

CREATE TRIGGER inspection_points_to_totals AFTER INSERT ON inspection_points
    FOR EACH ROW EXECUTE FUNCTION inspection_points_to_totals();
