-- The case-deadline loop reads only what is due: each undecided case keeps when its next flag
-- (the day-60 warning, then past the decision limit) falls due, NULL once both are set.
ALTER TABLE cases ADD COLUMN next_flag_at timestamptz;

-- Existing undecided cases with a flag still to set are marked due at once: the limits live in
-- the town's rules.yaml, which SQL cannot read, so the loop's first pass computes each one.
UPDATE cases SET next_flag_at = filed_at
 WHERE step IN ('filed', 'investigated', 'reviewed') AND (warned_at IS NULL OR overdue_at IS NULL);

-- Only undecided cases: decided, closed and transferred ones drop out of the index.
CREATE INDEX cases_next_flag ON cases (next_flag_at) WHERE step IN ('filed', 'investigated', 'reviewed');
