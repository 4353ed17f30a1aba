-- Issue #16: a county role's lists (every town's inspections and cases, newest first) read the
-- newest rows by time and stop at the page, whatever years the county holds.
CREATE INDEX IF NOT EXISTS inspections_newest ON inspections (created_at DESC);
CREATE INDEX IF NOT EXISTS cases_newest ON cases (filed_at DESC);
