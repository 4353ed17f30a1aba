-- Every matter dispatch has been told of, as filed (no personal data reaches dispatch).
CREATE TABLE matters (
    request_id  uuid PRIMARY KEY,
    ticket_no   text NOT NULL,
    item_code   text NOT NULL,
    colour      text NOT NULL,
    village     text NOT NULL,
    location    text NOT NULL,
    target      text,
    filed_at    timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    event_id    uuid NOT NULL
);
