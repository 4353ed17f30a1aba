-- Evidence photos (issue #29, 执法全过程记录): an inspection's, taken during its visit, and a case's,
-- each documenting one of its steps. The bytes are in S3 (stored copy and thumbnail, cleaned of all
-- metadata, written once: docs/attachments.md#evidence); what the original said about when and where
-- it was taken stays here, never in the bucket, on a topic or in a log. A row is written in the
-- recording's transaction, after its objects were put, so a row always has its objects; an object
-- without a row is removed by the orphan sweep, and no code removes or replaces one with a row.
-- Added only: v1.2 neither reads nor writes this table.
CREATE TABLE IF NOT EXISTS evidence (
    attachment_id   uuid PRIMARY KEY,
    town_code       text NOT NULL,
    inspection_id   uuid REFERENCES inspections (inspection_id),
    case_id         uuid REFERENCES cases (case_id),
    step            text,                     -- the case's step it documents (a case's evidence)
    matter_id       text NOT NULL,            -- its keys' matter: the request id, else the inspection id
    note            text NOT NULL,
    kind            text NOT NULL,            -- photo
    seq             smallint NOT NULL,        -- its place among the record's evidence, from 1
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
    latitude        double precision,         -- the original's GPS position: kept here alone
    longitude       double precision,
    uploaded_by     text NOT NULL,
    uploaded_at     timestamptz NOT NULL,
    CONSTRAINT evidence_of_one_record CHECK ((inspection_id IS NULL) <> (case_id IS NULL)),
    CONSTRAINT evidence_of_a_case_step CHECK (case_id IS NULL OR step IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS evidence_of_inspection ON evidence (inspection_id, seq) WHERE inspection_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS evidence_of_case ON evidence (case_id, seq) WHERE case_id IS NOT NULL;

-- Write-once in the database too: a recorded row (its digests, its keys) is never changed or
-- removed; an UPDATE, DELETE or TRUNCATE is refused. An owner can drop the triggers: the digests
-- on enforcement.evidence.recorded, kept by whoever subscribes, still tell what was recorded.
CREATE OR REPLACE FUNCTION evidence_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is write-once (%)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER evidence_write_once BEFORE UPDATE OR DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION evidence_write_once();
CREATE OR REPLACE TRIGGER evidence_no_truncate BEFORE TRUNCATE ON evidence
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_write_once();
