-- Appraisal keeps facts, not running totals: every figure is computed from these rows, so the
-- order in which topics are consumed (or replayed) cannot change a score.
CREATE TABLE task_facts (
    task_id            text PRIMARY KEY,
    request_id         text,
    dispatched_event   uuid,
    period             text,          -- YYYY-MM of dispatch, town time zone
    assignee           text,
    post               text,
    module             text,
    village            text,
    seconded_unit      text,
    item_code          text,
    colour             text,
    difficulty         double precision,
    dispatched_at      timestamptz,
    respond_by         timestamptz,
    resolve_by         timestamptz,
    redispatch_of      text,
    accepted_at        timestamptz,
    accepted_event     uuid,
    completions        integer NOT NULL DEFAULT 0,
    first_completed_at timestamptz,
    last_completed_at  timestamptz,
    last_on_time       boolean,
    completed_event    uuid,
    failed_checks      integer NOT NULL DEFAULT 0,
    rework_event       uuid,
    extensions         integer NOT NULL DEFAULT 0,
    extended_event     uuid,
    overdue_event      uuid,
    escalated_event    uuid,
    returned_invalid   boolean NOT NULL DEFAULT false,
    invalid_return_event uuid
);
CREATE INDEX task_facts_request ON task_facts (request_id);
CREATE INDEX task_facts_redispatch ON task_facts (redispatch_of);
CREATE INDEX task_facts_staff ON task_facts (period, assignee);
CREATE INDEX task_facts_module ON task_facts (period, module);
CREATE INDEX task_facts_village ON task_facts (period, village);

CREATE TABLE matter_facts (
    request_id  text PRIMARY KEY,
    village     text,
    filed_at    timestamptz,
    rating      text,
    rated_at    timestamptz,
    rated_event uuid
);

CREATE TABLE inspection_facts (
    inspection_id text PRIMARY KEY,
    period        text NOT NULL,
    officers      text[] NOT NULL,
    task_count    integer NOT NULL,
    finished_at   timestamptz NOT NULL,
    event_id      uuid NOT NULL
);
CREATE INDEX inspection_facts_period ON inspection_facts (period);

-- The one input not on a topic: the parent department's score of a seconded unit (双向考评).
CREATE TABLE seconded_scores (
    unit       text NOT NULL,
    period     text NOT NULL,
    score      double precision NOT NULL,
    posted_by  text NOT NULL,
    posted_at  timestamptz NOT NULL,
    PRIMARY KEY (unit, period)
);

CREATE TABLE alerts (
    staff_id  text NOT NULL,
    period    text NOT NULL,
    level     text NOT NULL,
    reasons   text[] NOT NULL,
    raised_at timestamptz NOT NULL,
    cause_event_id uuid NOT NULL,
    PRIMARY KEY (staff_id, period, level)   -- each level once per staff per period
);

-- Last published figures, only to rank a subject in its score.updated notification.
CREATE TABLE score_cache (
    subject_type text NOT NULL,
    subject_id   text NOT NULL,
    period       text NOT NULL,
    composite    double precision,
    points       double precision NOT NULL,
    module       text,
    PRIMARY KEY (subject_type, subject_id, period)
);
