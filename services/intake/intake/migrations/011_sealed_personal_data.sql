-- Issue #28 item 7: the citizen's name, phone and id number sealed at rest (intake/personal_data.py,
-- docs/security-encryption.md). Expand only: v1.1.0 keeps reading and writing the plaintext columns,
-- which this release writes blank ('' and NULL) and `python -m intake data re-encrypt` blanks as it
-- seals the rows filed before; the release after drops them (contract).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS citizen_name_enc      text;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS citizen_phone_enc     text;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS citizen_id_number_enc text;
-- HMAC-SHA256 of the normalised phone under TOWNFLOW_INTAKE_LOOKUP_KEY: lookups by phone compare it.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS citizen_phone_hash    text;
-- The key the row's values are sealed under (also in each value): what re-encrypt looks for.
-- NULL: not sealed (filed by the previous release, or erased).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS citizen_key_id        text;
-- When the personal data was erased, the retention period after closure over; the matter stays.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS personal_data_erased_at timestamptz;

CREATE INDEX IF NOT EXISTS requests_by_phone_hash ON requests (town_code, citizen_phone_hash)
    WHERE citizen_phone_hash IS NOT NULL;
-- The erasure's scan: closed matters whose data is still there, oldest closure first.
CREATE INDEX IF NOT EXISTS requests_to_erase ON requests (status_at)
    WHERE status = 'closed' AND personal_data_erased_at IS NULL;
