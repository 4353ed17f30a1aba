from pydantic import Field

from townflow_shared.settings import PhotoTakingSettings


class EnforcementSettings(PhotoTakingSettings):
    service_name: str = "enforcement"
    http_port: int = 8003
    # How often the case-deadline loop checks decision limits; a moved test clock wakes it at once.
    case_deadline_seconds: float = 30.0
    # Cases the loop claims per transaction; a wake-up takes batch after batch until none is due.
    case_deadline_batch_size: int = 500
    # Evidence photos (docs/attachments.md#evidence): at most this many in one upload.
    enforcement_evidence_max_photos: int = 9
    # Evidence under Object Lock (docs/attachments.md#object-lock-a-bucket-of-its-own-for-evidence):
    # a bucket of its own, created with Object Lock on, where every evidence object is retained in
    # COMPLIANCE mode for `s3_evidence_retention_days`; unset, evidence goes to the deployment's
    # bucket, written once (If-None-Match) and nothing more.
    s3_evidence_bucket: str | None = None
    s3_evidence_retention_days: int = Field(default=3650, ge=1, le=36500)
