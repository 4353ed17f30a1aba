-- Wrong access codes counted per client address (issue #28): a stranger's wrong codes no longer
-- make the citizen wait. Each entry {"at": …, "address": …} within the last hour; the address is
-- a keyed hash (rules.address_ref), never the address itself. `failures` (no address) is still
-- read, as one address, for what replicas of the release before wrote; the new ones empty it.
ALTER TABLE access_code_guards ADD COLUMN IF NOT EXISTS wrong_codes jsonb NOT NULL DEFAULT '[]';
