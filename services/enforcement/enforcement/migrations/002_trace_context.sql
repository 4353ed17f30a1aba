-- The W3C context of each need's matter, so an officer's start and result link to those traces.
ALTER TABLE needs ADD COLUMN trace_headers jsonb;
