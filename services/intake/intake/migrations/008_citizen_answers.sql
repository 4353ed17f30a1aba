-- Issue #27: what the citizen is told of a matter, from what dispatch publishes: the answer (答复)
-- given when its task was completed, the module handling it, the date it is promised by (the
-- task's resolve_by, moved by extensions and reopening). A table of its own beside `requests`,
-- which the previous release reads whole; one row per matter, each part with the moment of the
-- event that set it, so an older event arriving late never overwrites a newer one.
CREATE TABLE IF NOT EXISTS request_answers (
    request_id     uuid PRIMARY KEY REFERENCES requests (request_id),
    town_code      text NOT NULL,
    reply          text,
    replied_at     timestamptz,
    handling_module text,
    handling_since timestamptz,
    promised_by    timestamptz,
    promised_at    timestamptz
);
