-- 综合查一次: needs for the same target join one planned inspection until it starts.
CREATE TABLE inspections (
    inspection_id uuid PRIMARY KEY,
    target        text NOT NULL,
    status        text NOT NULL,  -- planned, started, done
    units         text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    started_by    text,
    finished_at   timestamptz,
    officers      text[],
    present_units text[],
    findings      jsonb,
    visits_saved  integer NOT NULL DEFAULT 0
);
-- At most one planned inspection per target: the join point for new needs.
CREATE UNIQUE INDEX inspections_one_planned ON inspections (target) WHERE status = 'planned';

CREATE TABLE needs (
    need_id       uuid PRIMARY KEY,
    inspection_id uuid NOT NULL REFERENCES inspections (inspection_id),
    source        text NOT NULL,  -- task, rectify
    task_id       text,
    request_id    text,
    item_code     text NOT NULL,
    target        text NOT NULL,
    units         text[] NOT NULL,
    due           timestamptz,
    created_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX needs_one_per_task ON needs (task_id) WHERE source = 'task';
CREATE INDEX needs_inspection ON needs (inspection_id);

CREATE TABLE cases (
    case_id        uuid PRIMARY KEY,
    task_id        text NOT NULL,
    request_id     text NOT NULL,
    inspection_id  uuid NOT NULL REFERENCES inspections (inspection_id),
    item_code      text NOT NULL,
    target         text NOT NULL,
    step           text NOT NULL,
    filed_at       timestamptz NOT NULL,
    decision_due   timestamptz NOT NULL,
    extended       boolean NOT NULL DEFAULT false,
    extension_reason text,
    decision       text,
    decided_at     timestamptz,
    transferred_to text,
    warned_at      timestamptz,
    overdue_at     timestamptz
);
CREATE INDEX cases_open ON cases (step, decision_due);

CREATE TABLE case_steps (
    case_id uuid NOT NULL REFERENCES cases (case_id),
    step    text NOT NULL,
    at      timestamptz NOT NULL,
    by      text NOT NULL,
    note    text,
    PRIMARY KEY (case_id, step)
);

CREATE TABLE plans (
    plan_id      uuid PRIMARY KEY,
    seed         bigint NOT NULL,
    sample_size  integer NOT NULL,
    population   text[] NOT NULL,
    targets      jsonb NOT NULL,
    published_at timestamptz NOT NULL,
    published_by text NOT NULL
);
