-- Which replica's relay publishes the outbox, and when it last showed it was alive (issue #26).
-- One row. The holder renews it every cycle on the database's clock; another replica takes it
-- over only when the heartbeat is older than the takeover time, and then fences the old holder
-- at the broker (outbox.py). Additive only: the release before this one never reads it.
CREATE TABLE IF NOT EXISTS outbox_relay_lease (
    only_row      boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    holder        text        NOT NULL,           -- "<host>:<pid>:<nonce>" of the relay holding it
    heartbeat_at  timestamptz NOT NULL
);
INSERT INTO outbox_relay_lease (holder, heartbeat_at) VALUES ('', '-infinity') ON CONFLICT DO NOTHING;
