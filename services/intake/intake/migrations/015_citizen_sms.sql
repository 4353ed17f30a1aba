-- Citizens' SMS (issue #31 item 3, docs/notify.md "Citizens' SMS"). Tables beside `requests`, never
-- columns on it (011's lesson: the previous release's cached `SELECT *` statements).
-- The citizen's choice at filing (不接收短信); a matter without a row (filed by a release before this
-- one) is sent nothing.
CREATE TABLE IF NOT EXISTS request_sms (
    request_id uuid PRIMARY KEY REFERENCES requests (request_id),
    town_code  text NOT NULL,
    opted_out  boolean NOT NULL
);
-- One message per (source, kind): the filing's request id, or the consumed event's id, so an event
-- delivered again (or on another replica) adds no second message. Never the phone: the sender opens
-- it from request_citizens when it sends.
CREATE TABLE IF NOT EXISTS sms_outbox (
    id              bigserial PRIMARY KEY,
    request_id      uuid NOT NULL REFERENCES requests (request_id),
    town_code       text NOT NULL,
    kind            text NOT NULL,               -- filed, completed, callback
    source_id       uuid NOT NULL,
    template        text NOT NULL,
    params          jsonb NOT NULL,              -- the template's variables
    red             boolean NOT NULL,            -- sent in quiet hours too
    status          text NOT NULL DEFAULT 'pending',  -- pending, sent, failed (refused for good), skipped
    created_at      timestamptz NOT NULL,
    hold_until      timestamptz,                 -- the town's clock: quiet hours, the callback's day
    next_attempt_at timestamptz NOT NULL DEFAULT now(),  -- the database's clock: back-off
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,                        -- why it waits, failed or was skipped (never the phone)
    lease_holder    text,
    lease_until     timestamptz,
    provider_id     text,                        -- the gateway's id of the message (BizId)
    sent_at         timestamptz,
    UNIQUE (source_id, kind)
);
CREATE INDEX IF NOT EXISTS sms_outbox_due ON sms_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS sms_outbox_of_request ON sms_outbox (request_id);
