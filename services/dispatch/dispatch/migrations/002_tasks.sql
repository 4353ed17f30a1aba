CREATE TABLE tasks (
    task_id             uuid PRIMARY KEY,
    request_id          uuid NOT NULL,
    ticket_no           text NOT NULL,
    item_code           text NOT NULL,
    kind                text NOT NULL,
    colour              text NOT NULL,
    village             text NOT NULL,
    location            text NOT NULL,
    target              text,
    lead_module         text NOT NULL,
    cooperating_modules text[] NOT NULL DEFAULT '{}',
    post                text NOT NULL,
    assignee            text NOT NULL,
    assigned_via        text NOT NULL,
    status              text NOT NULL,  -- dispatched, accepted, returned, redispatched, completed, rework, closed
    dispatched_at       timestamptz NOT NULL,
    window_start        timestamptz NOT NULL,  -- dispatch, or the start of a rework
    respond_by          timestamptz NOT NULL,
    resolve_by          timestamptz NOT NULL,
    accepted_at         timestamptz,
    completed_at        timestamptz,
    completed_by        text,
    resolution          text,
    on_time             boolean,
    returned_at         timestamptz,
    return_reason       text,
    redispatch_of       uuid REFERENCES tasks (task_id),
    inspection_id       text,
    rework_count        integer NOT NULL DEFAULT 0,
    extension_count     integer NOT NULL DEFAULT 0
);
CREATE INDEX tasks_open_by_assignee ON tasks (assignee) WHERE status IN ('dispatched', 'accepted', 'rework');
CREATE INDEX tasks_request ON tasks (request_id);
CREATE INDEX tasks_supervision ON tasks (status, resolve_by);

CREATE TABLE supervisions (
    task_id  uuid NOT NULL REFERENCES tasks (task_id),
    level    text NOT NULL,
    at       timestamptz NOT NULL,
    notified text[] NOT NULL,
    PRIMARY KEY (task_id, level)   -- each level once per task
);

CREATE TABLE extensions (
    extension_id uuid PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (task_id),
    days         integer NOT NULL,
    reason       text NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending',  -- pending, approved, refused
    decided_by   text,
    decided_at   timestamptz,
    note         text
);
CREATE UNIQUE INDEX extensions_one_pending ON extensions (task_id) WHERE status = 'pending';

CREATE TABLE off_post (
    id            bigserial PRIMARY KEY,
    staff_id      text NOT NULL,
    from_at       timestamptz NOT NULL,
    to_at         timestamptz NOT NULL,
    reason        text NOT NULL,
    registered_by text NOT NULL,
    CHECK (to_at > from_at)
);
CREATE INDEX off_post_staff ON off_post (staff_id, from_at, to_at);
