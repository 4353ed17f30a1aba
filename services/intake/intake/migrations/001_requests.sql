-- Citizens' personal data lives here and nowhere else in Townflow.
CREATE TABLE requests (
    request_id        uuid PRIMARY KEY,
    ticket_no         text NOT NULL UNIQUE,
    access_code       text NOT NULL,
    channel           text NOT NULL,
    item_code         text NOT NULL,
    colour            text NOT NULL,
    description       text NOT NULL,
    village           text NOT NULL,
    location          text NOT NULL,
    target            text,
    citizen_name      text NOT NULL,
    citizen_phone     text,
    citizen_id_number text,
    citizen_ref       text NOT NULL,
    proxy_agent_id    text,
    village_record_id text,
    filed_by          text NOT NULL,
    filed_at          timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'filed',
    completed_at      timestamptz,
    rating            text,
    rated_at          timestamptz
);
CREATE INDEX requests_repeat_idx ON requests (citizen_ref, item_code, filed_at);

-- One row per day; the upsert's row lock makes the daily sequence gap-free under concurrency.
CREATE TABLE ticket_sequences (
    day  date PRIMARY KEY,
    last integer NOT NULL
);

CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    status      integer,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- The status timeline shown to the citizen, built from the events intake consumes.
CREATE TABLE timeline (
    seq        bigserial PRIMARY KEY,
    request_id uuid NOT NULL REFERENCES requests (request_id),
    at         timestamptz NOT NULL,
    step       text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_id   uuid,
    UNIQUE (event_id, request_id)  -- one inspection event steps several matters
);
CREATE INDEX timeline_request_idx ON timeline (request_id, at);

-- Which request each task belongs to: inspection events name tasks, the timeline needs requests.
CREATE TABLE task_requests (
    task_id    text PRIMARY KEY,
    request_id uuid NOT NULL
);
ALTER TABLE requests ADD COLUMN status_at timestamptz;
