-- Notify's own tables (issue #31). The inbox, outbox and audit tables are the shared migrations'.

-- What notify remembers of each dispatched task, for the later events that name only the task.
CREATE TABLE IF NOT EXISTS known_tasks (
    task_id    text PRIMARY KEY,
    town_code  text NOT NULL,
    assignee   text NOT NULL,
    post       text NOT NULL,
    item_code  text NOT NULL,
    village    text NOT NULL,
    location   text NOT NULL
);

-- One message per (event, recipient, channel), written in the consumer's transaction with the
-- event's inbox row and sent afterwards by the sender loop: the delivery log too.
CREATE TABLE IF NOT EXISTS deliveries (
    id              bigserial PRIMARY KEY,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    town_code       text NOT NULL,
    recipient       text NOT NULL,
    channel         text NOT NULL,  -- robot:<name> or email:<address>
    title           text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    in_digest       boolean NOT NULL DEFAULT false,  -- sent folded into a digest (a robot's limit)
    UNIQUE (event_id, recipient, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (channel, next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_town ON deliveries (town_code, id DESC);

-- Which replica sends to a channel now, until when: two never send to one channel at once, so a
-- row is sent by one replica and a robot's per-minute count is exact.
CREATE TABLE IF NOT EXISTS channel_leases (
    channel text PRIMARY KEY,
    holder  text NOT NULL,
    until   timestamptz NOT NULL
);

-- Each message a robot was sent (a single or a digest), for its per-minute limit.
CREATE TABLE IF NOT EXISTS robot_messages (
    channel text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS robot_messages_recent ON robot_messages (channel, sent_at);
