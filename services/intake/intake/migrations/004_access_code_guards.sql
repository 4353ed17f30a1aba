-- Wrong access codes per ticket within the last hour (SPEC §6.1): in the database, so the limit
-- holds across intake replicas and survives a restart. Also for tickets that do not exist, so
-- the answer does not tell a guessed ticket number from a real one.
CREATE TABLE IF NOT EXISTS access_code_guards (
    ticket_no text PRIMARY KEY,
    failures  timestamptz[] NOT NULL DEFAULT '{}'
);
