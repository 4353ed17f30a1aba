from townflow_shared.settings import ServiceSettings


class AppraisalSettings(ServiceSettings):
    service_name: str = "appraisal"
    http_port: int = 8004
    # A rebuild applies what one fetch returns as one batch: large, so a replay costs a few
    # set-based statements per thousands of events instead of round trips per event.
    rebuild_batch_max: int = 5000
    # Processes replaying side by side, each its share of the towns: parsing and folding events is
    # Python's work on one core, so two of them use what PostgreSQL leaves of a second one.
    rebuild_workers: int = 2
    rebuild_progress_seconds: float = 5.0
