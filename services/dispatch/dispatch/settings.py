from townflow_shared.settings import ServiceSettings


class DispatchSettings(ServiceSettings):
    service_name: str = "dispatch"
    http_port: int = 8002
    # How often supervision (督办) checks deadlines; a moved test clock wakes it at once.
    supervision_seconds: float = 10.0
    # Tasks supervision claims per transaction; a wake-up takes batch after batch until none is due.
    supervision_batch_size: int = 500
    # Photos of a task (docs/attachments.md): the multipart body of a completion or a closure check
    # may carry an item's most photos (task_photos_max, at most 9) at photo_max_bytes each, with room
    # for the form; the orphan sweep of dispatch's own objects wakes every
    # `dispatch_photo_sweep_seconds` and removes objects that have had no record for
    # `dispatch_photo_orphan_grace_seconds` (far longer than a completion takes to commit).
    http_max_upload_bytes: int = 48_000_000
    dispatch_photo_sweep_seconds: float = 3600.0
    dispatch_photo_orphan_grace_seconds: float = 3600.0
