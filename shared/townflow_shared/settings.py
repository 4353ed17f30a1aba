"""Settings every service reads from `TOWNFLOW_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_TOWN_DIR = Path(__file__).with_name("demo_town")
# The demo county of three towns (SPEC §8); the services move to it when they serve a county.
DEMO_COUNTY_DIR = Path(__file__).with_name("demo_county")


class ServiceSettings(BaseSettings):
    """The settings table in the README lists every field here (env name = TOWNFLOW_ + upper)."""

    model_config = SettingsConfigDict(env_prefix="TOWNFLOW_", extra="ignore")

    service_name: str = "townflow"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # The edge's limits on hostile input (townflow_shared.guards). A body over max_body_bytes is
    # refused 413 (on its Content-Length, before it is read); a JSON body may nest max_json_depth
    # deep and hold max_json_members members and items in all (enforcement's plan takes 10,000
    # targets); a body must arrive within body_timeout_seconds (408); a URL longer than
    # max_url_length is refused 414. uvicorn reads a request's head up to max_head_bytes, so an
    # over-long URL below that gets its 414 instead of a reset connection.
    http_max_body_bytes: int = 1_048_576
    http_max_json_depth: int = 32
    http_max_json_members: int = 20_000
    http_body_timeout_seconds: float = 10.0
    http_max_url_length: int = 8192
    # A multipart body (photos) may be this large: 0, as large as any body (a service that takes
    # no photos; PhotoTakingSettings for one that does).
    http_max_upload_bytes: int = 0
    http_max_head_bytes: int = 2 * 1_048_576
    # An idle keep-alive connection is closed after this long: longer than any client in front of
    # it keeps one idle (the console's `service_keep_alive_seconds`, 15; nginx's upstream keepalive,
    # 60), so the client always closes first. Equal timeouts (uvicorn's and httpx's defaults are
    # both 5 s) race: the server closes a connection the client has just sent a request on, and the
    # person sees a 502 for a request that was never read.
    http_keep_alive_seconds: int = 75
    # Which peers' X-Forwarded-For names the client (comma-separated addresses or CIDRs, `*` for
    # any): the ingress in front of the console, the console in front of intake. The per-address
    # limits (sign-in failures, wrong access codes) count the address found this way.
    http_forwarded_allow_ips: str = "127.0.0.1,::1"
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/townflow")
    db_pool_min: int = 2
    db_pool_max: int = 10
    # A transaction left open this long without a statement is ended by PostgreSQL, with its locks:
    # what frees the relay lock and claimed rows of a paused or cut-off replica (db.session_settings).
    db_idle_in_transaction_seconds: float = 5.0
    # A session that has waited this long mid-statement for its client (paused between a Parse and
    # its Sync, where neither timeout reaches) is ended by the service's replicas (db.END_STUCK_SESSIONS).
    # 0: never.
    db_stuck_session_seconds: float = 5.0
    db_lock_timeout_seconds: float = 10.0
    db_statement_timeout_seconds: float = 30.0
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_partitions: int = 12  # enough for a county's replicas to share each topic
    kafka_replication: int = 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    town_dir: Path = DEMO_TOWN_DIR  # one town's folder, or a county's (county.yaml + a folder per town)
    legacy_town_code: str | None = None  # a county upgraded from a one-town database: that town's code
    # The audit trail (issue #28) keeps records this many days, then `audit prune` removes them
    # behind a checkpoint; under 180 days (网络安全法 §21, 等保 2.0) is refused at start-up.
    audit_retention_days: int = Field(default=180, ge=180)
    jwt_secret: SecretStr | None = None       # HS256, for local runs
    jwt_jwks_url: str | None = None           # an OIDC issuer's keys (RS256/ES256), production
    jwt_jwks_cache_seconds: int = 300
    jwt_jwks_refetch_seconds: float = 30
    jwt_issuer: str | None = None             # required `iss`, when set
    jwt_audience: str | None = None           # required `aud`, when set: the service's own
    jwt_staff_id_claim: str = "sub"           # the claim holding the staff id (Keycloak: `staff_id`)
    test_clock: bool = False
    outbox_relay: bool = True
    outbox_batch_size: int = 500
    outbox_poll_seconds: float = 1.0
    # A standby relay takes the lease over when the holder has not renewed it this long (outbox.py).
    outbox_takeover_seconds: float = 4.0
    kafka_transaction_timeout_seconds: float = 10.0
    # A consumer replica that stops heartbeating this long loses its partitions to the others.
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    # A consumer replica that has not fetched for this long (its batch waiting out a database it
    # alone cannot reach) leaves the group, so its partitions go to the others; longer than any
    # healthy batch takes.
    kafka_max_poll_interval_ms: int = 6000
    lag_seconds: float = 15.0
    group_gauges_seconds: float = 5.0
    commit_interval_seconds: float = 0.2
    consume_batch_max: int = 500
    kafka_fetch_min_bytes: int = 1
    kafka_fetch_max_wait_ms: int = 500
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    # Waiting out an outage (SPEC §6.1): back-off from base, doubling, capped, with full jitter.
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 10.0
    kafka_dlq_retention_ms: int = 30 * 24 * 3600 * 1000  # event topics keep everything (-1); .dlq topics 30 days
    kafka_max_message_bytes: int = 1_048_576  # largest record the relay sends; keep ≤ the broker's message.max.bytes


class PhotoTakingSettings(ServiceSettings):
    """A service that takes photos (intake, dispatch, enforcement: townflow_shared.attachments)."""

    # The object store (townflow_shared.objects, docs/attachments.md): an S3 endpoint, the
    # deployment's one bucket and its credentials; without an endpoint the service runs and
    # refuses photos (503), every other route as before.
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # Photos (townflow_shared.photos): the largest upload taken, in bytes and in pixels (a
    # decompression bomb is refused on its header); the stored copy's longest side, its
    # thumbnail's and their JPEG quality (82: a 12 MP photo at 2048 px in about 400 KB).
    photo_max_bytes: int = 15_000_000
    photo_max_pixels: int = 50_000_000
    photo_max_side: int = 2048
    photo_thumbnail_side: int = 320
    photo_quality: int = 82
    photo_max_stored_bytes: int = 600_000  # the stored copy's byte budget: the quality steps down to meet it
    # Its multipart body may carry nine photos at photo_max_bytes each, with room for the form.
    http_max_upload_bytes: int = 48_000_000
    # Its orphan sweep of its own objects wakes every `photo_sweep_seconds` and removes those that
    # have had no record for `photo_orphan_grace_seconds` (far longer than a command takes to commit).
    photo_sweep_seconds: float = 3600.0
    photo_orphan_grace_seconds: float = 3600.0


