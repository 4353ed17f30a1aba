-- The console's own state (issue #28): signed-in sessions, so a sign-out holds on every replica at
-- once, and failed sign-ins, so the limits count across replicas. No personal data: a session's
-- person is the account (login, staff id, roles, name as the county's files give them).
CREATE TABLE IF NOT EXISTS sessions (
    id_hash    bytea PRIMARY KEY,              -- SHA-256 of the cookie's id; the id is never stored
    data       jsonb NOT NULL,                 -- session.session_data: the CSRF token and the person
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz                     -- signed out
);
CREATE INDEX IF NOT EXISTS sessions_started_at ON sessions (started_at);

-- Failed sign-ins within the lock window, per login ('login:<login>') and per client address
-- ('address:<ip>'). Unknown logins too, so the answer does not tell an account from a mistake.
CREATE TABLE IF NOT EXISTS sign_in_failures (
    subject  text PRIMARY KEY,
    failures timestamptz[] NOT NULL DEFAULT '{}'
);
