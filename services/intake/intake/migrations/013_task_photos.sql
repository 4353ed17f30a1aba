-- The after photos of a matter's task (issue #29), as dispatch.task.completed referenced them:
-- what the citizen's status view lists and intake's photo route serves. No bytes and no keys: the
-- objects are dispatch's, in the deployment's bucket, at the key the bucket's layout makes known
-- (`object_key("dispatch", town_code, request_id, attachment_id, variant)`, docs/attachments.md);
-- who may read them is intake's rule, as for the filing's own photos. One row per photo, written
-- once (a redelivered event adds none).
-- Added only: v1.2 neither reads nor writes this table.
CREATE TABLE IF NOT EXISTS task_photos (
    attachment_id   uuid PRIMARY KEY,
    request_id      uuid NOT NULL REFERENCES requests (request_id),
    town_code       text NOT NULL,
    task_id         text NOT NULL,
    stage           text NOT NULL,            -- after: 处置后照片, taken at completion
    seq             smallint NOT NULL,        -- its place among the completion's photos, from 1
    content_type    text NOT NULL,            -- of the stored copy (image/jpeg)
    bytes           integer NOT NULL,         -- of the stored copy
    sha256          text NOT NULL,            -- of the stored copy: what a reader can check
    original_sha256 text NOT NULL,
    taken_at        timestamptz NOT NULL,     -- the completion's time
    event_id        uuid NOT NULL
);
CREATE INDEX IF NOT EXISTS task_photos_of_request ON task_photos (request_id, taken_at, seq);
