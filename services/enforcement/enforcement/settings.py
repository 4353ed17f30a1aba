from townflow_shared.settings import ServiceSettings


class EnforcementSettings(ServiceSettings):
    service_name: str = "enforcement"
    http_port: int = 8003
    # How often the case-deadline loop checks decision limits; a moved test clock wakes it at once.
    case_deadline_seconds: float = 30.0
    # Cases the loop claims per transaction; a wake-up takes batch after batch until none is due.
    case_deadline_batch_size: int = 500
    # Evidence photos (docs/attachments.md#evidence): at most `enforcement_evidence_max_photos` in one
    # upload, the multipart body as large as that many at photo_max_bytes each; the orphan sweep wakes
    # every `enforcement_evidence_sweep_seconds` and removes objects that have had no record for
    # `enforcement_evidence_orphan_grace_seconds` (far longer than a recording takes to commit).
    enforcement_evidence_max_photos: int = 9
    http_max_upload_bytes: int = 48_000_000
    enforcement_evidence_sweep_seconds: float = 3600.0
    enforcement_evidence_orphan_grace_seconds: float = 3600.0
