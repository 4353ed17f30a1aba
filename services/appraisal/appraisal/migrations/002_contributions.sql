-- Each task's contribution to its subjects' figures, recomputed from its facts whenever they change,
-- so a subject's figures are one indexed SUM instead of a pass over all its tasks.
ALTER TABLE task_facts
    ADD COLUMN c_dispatched    integer NOT NULL DEFAULT 0,
    ADD COLUMN c_responded     integer NOT NULL DEFAULT 0,
    ADD COLUMN c_resolved      integer NOT NULL DEFAULT 0,
    ADD COLUMN c_completed     integer NOT NULL DEFAULT 0,
    ADD COLUMN c_reworked      integer NOT NULL DEFAULT 0,
    ADD COLUMN c_extended      integer NOT NULL DEFAULT 0,
    ADD COLUMN c_rated         integer NOT NULL DEFAULT 0,
    ADD COLUMN c_satisfied     integer NOT NULL DEFAULT 0,
    ADD COLUMN c_overdue       integer NOT NULL DEFAULT 0,
    ADD COLUMN c_escalated     integer NOT NULL DEFAULT 0,
    ADD COLUMN c_escalated_red integer NOT NULL DEFAULT 0,
    ADD COLUMN c_points        double precision NOT NULL DEFAULT 0;
CREATE INDEX task_facts_seconded ON task_facts (period, seconded_unit);

CREATE TABLE inspection_points (
    inspection_id text NOT NULL,
    staff_id      text NOT NULL,
    module        text,
    seconded_unit text,
    period        text NOT NULL,
    points        double precision NOT NULL,
    PRIMARY KEY (inspection_id, staff_id)
);
CREATE INDEX inspection_points_period ON inspection_points (period);
