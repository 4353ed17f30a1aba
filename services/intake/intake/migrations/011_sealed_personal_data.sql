-- Issue #28 item 7: the citizen's name, phone and id number sealed at rest (intake/personal_data.py,
-- docs/security-encryption.md), in a table of their own beside `requests`: v1.1.0 reads `requests`
-- whole (`SELECT *`, prepared and cached), and a column added there would change the rows its cached
-- statements return (asyncpg's InvalidCachedStatementError: a 500 on every old replica's connection).
-- Expand only: v1.1.0 keeps reading and writing the plaintext columns of `requests`, which this release
-- writes blank ('' and NULL) and `python -m intake data re-encrypt` blanks as it seals the rows filed
-- before; the release after drops them (contract).
CREATE TABLE IF NOT EXISTS request_citizens (
    request_id    uuid PRIMARY KEY REFERENCES requests (request_id),
    town_code     text NOT NULL,
    name_enc      text,            -- v1:<key id>:<algorithm>:<base64 of nonce, ciphertext, tag>
    phone_enc     text,
    id_number_enc text,
    -- HMAC-SHA256 of the normalised phone under TOWNFLOW_INTAKE_LOOKUP_KEY: lookups by phone compare it.
    phone_hash    text,
    key_id        text,            -- the key the values are sealed under; NULL once erased
    erased_at     timestamptz      -- the retention period after closure over: the matter stays
);
CREATE INDEX IF NOT EXISTS request_citizens_by_phone_hash ON request_citizens (town_code, phone_hash)
    WHERE phone_hash IS NOT NULL;
-- The erasure's scan: closed matters, oldest closure first (an index changes no statement's rows).
CREATE INDEX IF NOT EXISTS requests_closed ON requests (status_at) WHERE status = 'closed';
