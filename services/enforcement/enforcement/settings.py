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
