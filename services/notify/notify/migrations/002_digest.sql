-- The daily digest (issue #31): what notify knows of each task's state and deadlines, and of each
-- flagged case, from the events it consumes (never another service's database), and which digests
-- were recorded.

-- A task remembered before this migration has no state: `unknown`, never in a digest.
ALTER TABLE known_tasks ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'unknown';
ALTER TABLE known_tasks ADD COLUMN IF NOT EXISTS respond_by timestamptz;
ALTER TABLE known_tasks ADD COLUMN IF NOT EXISTS resolve_by timestamptz;
CREATE INDEX IF NOT EXISTS known_tasks_open ON known_tasks (town_code, assignee)
    WHERE state IN ('dispatched', 'accepted', 'rework');

-- An undecided case notify was told of (enforcement.case.flagged: near its limit or past it),
-- until a case.updated says it was decided, closed or transferred.
CREATE TABLE IF NOT EXISTS known_cases (
    case_id      text PRIMARY KEY,
    town_code    text NOT NULL,
    item_code    text NOT NULL,
    target       text NOT NULL,
    officers     text[] NOT NULL,
    decision_due timestamptz NOT NULL,
    open         boolean NOT NULL DEFAULT true
);
CREATE INDEX IF NOT EXISTS known_cases_open ON known_cases (town_code) WHERE open;

-- One digest per person and town-local day, however many replicas run: the key decides which
-- replica records it (its deliveries are written in the same transaction).
CREATE TABLE IF NOT EXISTS digests (
    town_code  text NOT NULL,
    recipient  text NOT NULL,
    day        date NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (town_code, recipient, day)
);
