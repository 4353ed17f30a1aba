-- Outbox rows the broker refused for good (record too large, topic not authorised, invalid topic
-- name), moved here by the relay in the transaction that takes them out of `outbox`, so the rows
-- behind them go on. An operator re-publishes (moves the row back to `outbox`) or discards them:
-- see the README's runbook "Outbox rows parked".
CREATE TABLE IF NOT EXISTS outbox_parked (
    id          bigint      PRIMARY KEY,           -- the row's id in `outbox`: the order it was written in
    topic       text        NOT NULL,
    key         text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL,
    reason      text        NOT NULL,              -- the broker's (or the client's) refusal
    parked_at   timestamptz NOT NULL DEFAULT now()
);
