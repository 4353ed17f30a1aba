from pydantic import Field, SecretStr

from townflow_shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    service_name: str = "notify"
    http_port: int = 8005
    # The deployment's SMTP relay (the county's mail server); the addresses are per person in
    # each town's notify.yaml. No host: e-mail deliveries wait (and say why in the log).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "townflow@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    # The sender loop: wakes this often (at once again while a wake-up sent something); claims at
    # most `send_channels_per_wake` channels with messages due for `send_lease_seconds` (two
    # replicas never send to one channel at once, so a robot's per-minute count is exact) and sends
    # to `send_concurrency` of them at once; at most `send_per_channel` messages per channel per
    # wake-up, each within `send_timeout_seconds`, so a channel's turn ends well inside its lease
    # (renewed when the turn begins).
    send_poll_seconds: float = 1.0
    send_lease_seconds: float = 60.0
    send_per_channel: int = 10
    send_timeout_seconds: float = 5.0
    send_channels_per_wake: int = 50
    send_concurrency: int = Field(default=8, ge=1)
    # A receiver that is down: tried again after base, doubling, at most max (never given up on).
    send_retry_base_seconds: float = 2.0
    send_retry_max_seconds: float = 300.0
    # The daily digest's loop: looks this often (and at once when a test moves the clock) for the
    # people whose digest time has come today (each town's notify.yaml, `digest_at`).
    digest_poll_seconds: float = 60.0
