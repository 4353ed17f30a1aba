-- A county (SPEC §8): every request belongs to a town, and each town numbers its own tickets.

-- The ticket number names its town (`<town_code>-<YYYYMMDD>-<sequence>`), so the town of a
-- request is read off it: old rows get theirs for free, and the two can never disagree.
ALTER TABLE requests ADD COLUMN town_code text NOT NULL
    GENERATED ALWAYS AS (split_part(ticket_no, '-', 1)) STORED;

-- Each town's own gap-free daily sequence. A day's row continues the numbers its tickets carry;
-- failing those (none can be missing: the row and its tickets commit together), the town whose
-- database this was (`townflow.default_town`, see townflow_shared.db.migrate).
ALTER TABLE ticket_sequences ADD COLUMN town_code text;
UPDATE ticket_sequences s SET town_code = d.town_code
  FROM (SELECT DISTINCT ON (day) to_date(split_part(ticket_no, '-', 2), 'YYYYMMDD') AS day, town_code
          FROM requests ORDER BY day, ticket_no DESC) d
 WHERE d.day = s.day;
UPDATE ticket_sequences SET town_code = NULLIF(current_setting('townflow.default_town', true), '')
 WHERE town_code IS NULL;
DELETE FROM ticket_sequences WHERE town_code IS NULL;  -- a day without a ticket: nothing to continue
ALTER TABLE ticket_sequences ALTER COLUMN town_code SET NOT NULL;
ALTER TABLE ticket_sequences DROP CONSTRAINT ticket_sequences_pkey;
ALTER TABLE ticket_sequences ADD PRIMARY KEY (town_code, day);

-- An Idempotency-Key belongs to the town filed in and its filer (staff ids are unique only
-- within a town). Old keys: the town of the ticket they answered.
ALTER TABLE idempotency_keys ADD COLUMN town_code text;
UPDATE idempotency_keys SET town_code = COALESCE(
    NULLIF(split_part(response ->> 'ticket_no', '-', 1), ''),
    NULLIF(current_setting('townflow.default_town', true), ''), '');
ALTER TABLE idempotency_keys ALTER COLUMN town_code SET NOT NULL;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (town_code, scope, key);
