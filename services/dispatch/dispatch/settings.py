from townflow_shared.settings import PhotoTakingSettings


class DispatchSettings(PhotoTakingSettings):
    service_name: str = "dispatch"
    http_port: int = 8002
    # How often supervision (督办) checks deadlines; a moved test clock wakes it at once.
    supervision_seconds: float = 10.0
    # Tasks supervision claims per transaction; a wake-up takes batch after batch until none is due.
    supervision_batch_size: int = 500
