-- 重复件 (docs/notify.md "Citizens' SMS"): the primary's completion texts the citizen of each matter
-- merged into it too, so one consumed event and kind is one message per matter.
CREATE UNIQUE INDEX IF NOT EXISTS sms_outbox_once ON sms_outbox (source_id, kind, request_id);
-- contract: (source_id, kind) is unique only since 015, which no release has run (CHANGELOG: Unreleased)
ALTER TABLE sms_outbox DROP CONSTRAINT IF EXISTS sms_outbox_source_id_kind_key;
