-- The auditor's date-range search reads what waits to be sealed by time too (audit_trail._SEARCH_IN_RANGE).
-- Without this index that part was a sequential scan of audit_pending, which costs nothing while the
-- table holds a second's records, and everything once a burst has passed through it: the sealer
-- deletes what it seals, but the table keeps its pages until a VACUUM can take its lock, which the
-- sealing pass (every second) rarely leaves it. bench-scale's county-year (its history written
-- through audit_pending) left dispatch's empty table at 450 MB: every week search 127-171 ms, 8-15 ms
-- through this index. One more index entry per record written: what 005 saved at the write side,
-- spent where a date range needs it.
CREATE INDEX IF NOT EXISTS audit_pending_by_time ON audit_pending (at);
