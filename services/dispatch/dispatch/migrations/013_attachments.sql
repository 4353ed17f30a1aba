-- Photos of a task (issue #29): the holder's after photos at completion (stage `after`, 处置后照片)
-- and the command centre's at the closure check (stage `check`, 核查). The bytes are in the
-- deployment's bucket under dispatch's keys (stored copy and thumbnail, cleaned of all metadata);
-- what the original said about when and where it was taken stays here, never in the bucket or on a
-- topic. A row is written in the completion's (or check's) transaction, after its objects were put,
-- so a row always has its objects; an object without a row is removed by the orphan sweep.
-- The columns are every owner's (townflow_shared.attachments.Stored.columns), then the task's.
-- Added only: the previous release neither reads nor writes this table.
CREATE TABLE IF NOT EXISTS attachments (
    attachment_id   uuid PRIMARY KEY,
    town_code       text NOT NULL,
    kind            text NOT NULL,            -- photo
    seq             smallint NOT NULL,        -- its place among its step's photos, from 1
    content_type    text NOT NULL,            -- of the stored copy (image/jpeg)
    bytes           integer NOT NULL,         -- of the stored copy
    sha256          text NOT NULL,            -- of the stored copy: what a reader can check
    width           integer NOT NULL,
    height          integer NOT NULL,
    stored_key      text NOT NULL,
    thumbnail_key   text NOT NULL,
    original_type   text NOT NULL,            -- jpeg, png, webp, heic: as sniffed
    original_bytes  integer NOT NULL,
    original_sha256 text NOT NULL,            -- of the bytes uploaded, which are not kept
    captured_at     text,                     -- EXIF DateTimeOriginal as the camera wrote it
    latitude        double precision,         -- the original's GPS position, kept here alone
    longitude       double precision,
    uploaded_by     text NOT NULL,
    uploaded_at     timestamptz NOT NULL,
    task_id         uuid NOT NULL REFERENCES tasks (task_id),
    request_id      uuid NOT NULL,            -- the matter: the objects' keys are by town and matter
    stage           text NOT NULL CHECK (stage IN ('after', 'check'))
);
CREATE INDEX IF NOT EXISTS attachments_of_task ON attachments (task_id, uploaded_at, seq);
