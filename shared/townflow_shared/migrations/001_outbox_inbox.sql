-- Transactional outbox: rows written in the same transaction as the state change they announce.
CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    payload     bytea       NOT NULL,          -- the exact bytes published
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- trace context of the writer
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Inbox: ids of events already handled, written in the same transaction as their effect.
CREATE TABLE IF NOT EXISTS inbox (
    handler     text        NOT NULL,
    event_id    uuid        NOT NULL,
    topic       text        NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, event_id)
);
