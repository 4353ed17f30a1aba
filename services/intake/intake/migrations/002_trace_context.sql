-- The W3C context of the filing, so later human actions can link their own traces to the matter's.
ALTER TABLE requests ADD COLUMN trace_headers jsonb;
