-- The matter in front of the handler (issue #27): who holds each task of a matter, as the
-- dispatch.task.* events tell intake, so intake alone decides who sees the citizen's name and
-- phone; and every read of them, kept here (never the personal data itself) for the appraisal
-- office. Added only: v1.1.0 neither reads nor writes these tables.
CREATE TABLE IF NOT EXISTS task_holders (
    task_id     text PRIMARY KEY,
    request_id  uuid NOT NULL,
    town_code   text NOT NULL,
    assignee    text,                  -- NULL until the task's dispatch event arrives (topics are
    post        text,                  -- consumed side by side: its acceptance may come first)
    lead_module text,
    status      text NOT NULL,         -- the task's status as the events last told it
    status_at   timestamptz NOT NULL   -- when that status began (events may arrive out of order)
);
CREATE INDEX IF NOT EXISTS task_holders_of_request ON task_holders (request_id);

-- One row per read that returned a citizen's personal data: who, in which role, when, which matter.
CREATE TABLE IF NOT EXISTS personal_data_reads (
    seq        bigserial PRIMARY KEY,
    town_code  text NOT NULL,
    read_at    timestamptz NOT NULL,
    staff_id   text NOT NULL,
    basis      text NOT NULL,          -- assignee, module_leader, command_centre; clerk, county_admin, admin (status reads)
    request_id uuid NOT NULL,
    ticket_no  text NOT NULL,
    task_id    text
);
-- The appraisal office's questions: a town's period, one person's period.
CREATE INDEX IF NOT EXISTS personal_data_reads_by_time ON personal_data_reads (town_code, read_at, seq);
CREATE INDEX IF NOT EXISTS personal_data_reads_by_staff ON personal_data_reads (town_code, staff_id, read_at, seq);
