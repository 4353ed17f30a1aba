-- 重复件 (SPEC §10): a matter merged into another (its primary) follows the primary's progress
-- until the merge is undone; `merged_into` is the primary's request.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS merged_into uuid REFERENCES requests (request_id);
ALTER TABLE requests ADD COLUMN IF NOT EXISTS merged_at timestamptz;
CREATE INDEX IF NOT EXISTS requests_followers ON requests (merged_into) WHERE merged_into IS NOT NULL;

-- A new filing looks for open matters of the same item in the same village, or of the same
-- target, filed within the town's duplicate window.
CREATE INDEX IF NOT EXISTS requests_duplicates_by_place ON requests (town_code, item_code, village, filed_at);
CREATE INDEX IF NOT EXISTS requests_duplicates_by_target ON requests (town_code, target, filed_at)
    WHERE target IS NOT NULL;
