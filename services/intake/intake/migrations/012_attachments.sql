-- Photos on a filing (issue #29): the record of each object in the deployment's bucket. The bytes
-- are in S3 (stored copy and thumbnail, cleaned of all metadata); what the original said about when
-- and where it was taken stays here, never in the bucket or on a topic. A row is written in the
-- filing's transaction, after its objects were put, so a row always has its objects; an object
-- without a row (a filing that failed after the put) is removed by the orphan sweep.
-- Added only: v1.2 neither reads nor writes this table.
CREATE TABLE IF NOT EXISTS attachments (
    attachment_id   uuid PRIMARY KEY,
    request_id      uuid NOT NULL REFERENCES requests (request_id),
    town_code       text NOT NULL,
    kind            text NOT NULL,            -- photo (evidence and completion photos come later)
    seq             smallint NOT NULL,        -- its place among the filing's photos, from 1
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
    latitude        double precision,         -- the original's GPS position: personal data
    longitude       double precision,         -- (a photo taken at home), kept here alone
    uploaded_by     text NOT NULL,
    uploaded_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS attachments_of_request ON attachments (request_id, seq);
