-- The W3C context the task was created in, so later human actions link their traces to the matter's.
ALTER TABLE tasks ADD COLUMN trace_headers jsonb;
