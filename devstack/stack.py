"""The whole local system: Kafka, PostgreSQL (one database per service) and the services, each as
one or more replicas (same database, same consumer group, a port and a log file of its own)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .issuer import LocalIssuer, audience_of
from .kafka import Kafka
from .postgres import Postgres
from .processes import Child, free_port, holds_port, port_open, wait_until

if TYPE_CHECKING:
    from .receivers import Receivers
from .s3 import SeaweedFS

REPO = Path(__file__).resolve().parent.parent
SERVICES: dict[str, int] = {"intake": 8001, "dispatch": 8002, "enforcement": 8003, "appraisal": 8004}
# Services that only subscribe (issue #31): started when asked for (`start_services(["notify"])`,
# `make up`), so every other stack, and the previous releases the upgrade test runs, stay as they were.
SUBSCRIBERS: dict[str, int] = {"notify": 8005}
ALL_SERVICES: dict[str, int] = {**SERVICES, **SUBSCRIBERS}
CONSOLE_PORT = 8000  # the staff console (SPEC §9): no consumer; it calls the four services
CONSOLE_DATABASE = "console"  # its own database: sessions and failed sign-ins (issue #28)
# The services that take photos (issue #29): each gets the stack's S3 bucket, under keys of its own.
PHOTO_TAKERS = ("intake", "dispatch", "enforcement")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the local stack answers on loopback only, not {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http, checked above
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def intake_key_env() -> dict[str, str]:
    """New keys of intake's sealed personal data (intake/personal_data.py), as its settings take them:
    one set per stack; a process that only builds intake's runtime (its documents, its topics) takes
    throwaway ones."""
    return {"TOWNFLOW_INTAKE_DATA_KEYS": json.dumps({"stack-1": "aes-256-gcm:" + base64.b64encode(
                secrets.token_bytes(32)).decode()}),
            "TOWNFLOW_INTAKE_DATA_KEY_ID": "stack-1", "TOWNFLOW_INTAKE_LOOKUP_KEY": secrets.token_urlsafe(32)}


def without_intake_keys_use_throwaway_ones() -> None:
    """Before building intake's runtime in a process that serves nothing (intake refuses to start
    without keys): throwaway keys, unless the environment names some."""
    if not any(name in os.environ for name in intake_key_env()):
        os.environ.update(intake_key_env())


def replica_counts(replicas: int | Mapping[str, int]) -> dict[str, int]:
    """How many replicas of each service: one number for all, or per service (the rest get 1)."""
    if isinstance(replicas, int):
        counts = dict.fromkeys(ALL_SERVICES, replicas)
    elif unknown := set(replicas) - set(ALL_SERVICES):
        raise ValueError(f"unknown services: {sorted(unknown)}")
    else:
        counts = {name: replicas.get(name, 1) for name in ALL_SERVICES}
    if bad := {name: n for name, n in counts.items() if n < 1}:
        raise ValueError(f"every service needs at least one replica: {bad}")
    return counts


@dataclass
class ServiceProcess:
    """One replica of a service: `index` 0 is the first (what `Stack.services` shows)."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    child: Child | None = None
    argv: list[str] = field(default_factory=list)  # how it is launched; `python -m <name>` if empty
    index: int = 0
    tree: Path | None = None  # another source tree to run from (a release's): its PYTHONPATH and cwd

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        """`dispatch-1`: how logs, the state file and fault reports name a replica."""
        return f"{self.name}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.child.proc.pid if self.child is not None and self.child.proc is not None else None

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    def start(self, wait: bool = True, **overrides: str) -> ServiceProcess:
        env = {**os.environ, **self.env, **{f"TOWNFLOW_{k.upper()}": v for k, v in overrides.items()}}
        if self.tree is not None:  # ahead of the virtualenv's editable install of this repository
            env["PYTHONPATH"] = os.pathsep.join(str(self.tree / p) for p in (
                "shared", *(f"services/{name}" for name in (*ALL_SERVICES, "console"))))
        self.child = Child(self.label, self.argv or [sys.executable, "-m", self.name], log=self.log, env=env,
                           cwd=self.tree or REPO).start()
        if wait:
            self.wait_ready()
        return self

    def ready(self) -> bool:
        """Running, listening on its port itself, and its /readyz answers 200; raises when the
        process has exited. (Another process on the port — another stack's service that took it
        first — answers /readyz too: its answer is not ours.)"""
        assert self.child is not None and self.child.proc is not None
        self.child.check_alive()
        return holds_port(self.child.proc.pid, self.port) and http_ok(f"{self.url}/readyz")

    def lost_its_port(self) -> bool:
        """It exited because another process held its port."""
        return (self.child is not None and not self.child.running
                and "address already in use" in self.child.tail(60).lower())

    def move_to(self, port: int) -> None:
        self.port = port
        self.env["TOWNFLOW_HTTP_PORT"] = str(port)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(self.ready, timeout, f"{self.label} /readyz on port {self.port}")

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


@dataclass(init=False)  # our own __init__: `replicas` is a count going in, the processes after
class Stack:
    """`Stack(workdir, replicas=2)` runs two replicas of every service, `replicas={"dispatch": 3}`
    three of dispatch and one of the rest. `replicas[name]` lists them; `services[name]` is the first.

    Every child dies with the THREAD that started it (PR_SET_PDEATHSIG), so start processes (and
    restart PostgreSQL or Kafka) from the main thread or from a pool thread that lives as long as
    the stack, e.g. `asyncio.to_thread` in the event loop that also stops the stack."""

    workdir: Path
    test_clock: bool
    preferred_ports: bool
    kafka_heap: str
    issuer: LocalIssuer  # signs the staff tokens; the services verify them from its JWKS
    citizen_ref_key: str
    intake_keys: dict[str, str]  # intake's keys of the citizen's personal data, new for each stack
    replica_count: dict[str, int]
    replicas: dict[str, list[ServiceProcess]]
    extra_children: list[Child]
    extra_env: dict[str, str]
    # How each service is launched, when not `python -m <name>` (the profiler wraps it).
    service_argv: Callable[[str], list[str]] | None
    # Started later, None until then.
    kafka: Kafka | None = None
    postgres: Postgres | None = None
    console: ServiceProcess | None = None
    # The S3 server whose bucket of this stack's own holds the photos; None: the services run
    # without photos (a fault test's or the bench's stack, which take none).
    s3: SeaweedFS | None = None
    s3_bucket: str | None = None
    # Enforcement's evidence in a bucket of its own under Object Lock (docs/attachments.md), when
    # asked by use_s3(evidence_lock_days=…); None: evidence in the stack's one bucket, written once.
    s3_evidence_bucket: str | None = None
    evidence_lock_days: int | None = None
    # notify's local receivers (robots, webhooks, SMTP): None, notify runs without them.
    receivers: Receivers | None = None

    def __init__(self, workdir: Path, *, replicas: int | Mapping[str, int] = 1, test_clock: bool = False,
                 preferred_ports: bool = False, kafka_heap: str = "512m",
                 citizen_ref_key: str | None = None, extra_env: dict[str, str] | None = None,
                 service_argv: Callable[[str], list[str]] | None = None) -> None:
        self.workdir = workdir
        self.replica_count = replica_counts(replicas)
        self.test_clock = test_clock
        self.preferred_ports = preferred_ports
        self.kafka_heap = kafka_heap
        self.issuer = LocalIssuer()
        self.citizen_ref_key = citizen_ref_key or secrets.token_urlsafe(32)
        self.console_state_key = secrets.token_urlsafe(32)
        self.intake_keys = intake_key_env()
        self.replicas = {}
        self.extra_children = []
        self.extra_env = dict(extra_env or {})
        self.service_argv = service_argv

    def use_receivers(self, receivers: Receivers | None) -> Stack:
        """Point notify and intake's SMS at these local receivers (started by the caller); None: at
        none. For the replicas added (or whose env is taken again, `service_env`) after."""
        self.receivers = receivers
        return self

    def use_s3(self, server: SeaweedFS, evidence_lock_days: int | None = None) -> Stack:
        """Store photos on `server` (started), in a bucket of this stack's own, made by start_infra:
        one server may serve several stacks, as one county cloud serves several deployments. With
        `evidence_lock_days`, enforcement's evidence goes to a second bucket, made with Object Lock
        on, each object retained that many days in COMPLIANCE mode."""
        self.s3 = server
        self.evidence_lock_days = evidence_lock_days
        return self

    @property
    def services(self) -> dict[str, ServiceProcess]:
        """The first replica of each service added (what a single-replica caller knows as "the service")."""
        return {name: processes[0] for name, processes in self.replicas.items() if processes}

    def all_replicas(self) -> Iterator[ServiceProcess]:
        for processes in self.replicas.values():
            yield from processes

    def replica(self, name: str, index: int) -> ServiceProcess:
        try:
            return self.replicas[name][index]
        except (KeyError, IndexError):
            raise LookupError(f"no replica {name}-{index}") from None

    @classmethod
    def in_temp_dir(cls, **kwargs: object) -> Stack:
        # PostgreSQL runs as `postgres` when we are root, so the folder must be traversable.
        workdir = Path(tempfile.mkdtemp(prefix="townflow-"))
        os.chmod(workdir, 0o755)  # noqa: S103 - PostgreSQL (as `postgres`) must traverse it; nothing secret at this level
        return cls(workdir=workdir, **kwargs)  # type: ignore[arg-type]

    def token(self, service: str | None, sub: str, roles: Iterable[str], ttl_seconds: int = 3600,
              town: str | None = None) -> str:
        """A staff token for one service (its audience), or for every service when None; with a
        `town` claim for a town's staff in a county (county roles need none)."""
        audience = audience_of(service) if service else [audience_of(s) for s in ALL_SERVICES]
        claims = {"town": town} if town else {}
        return self.issuer.token(sub, roles, audience, ttl_seconds, **claims)

    def start_infra(self) -> Stack:
        self.issuer.start()
        self.kafka = Kafka(self.workdir / "kafka", heap=self.kafka_heap).start()
        self.postgres = Postgres(self.workdir / "postgres", [*SERVICES, CONSOLE_DATABASE]).start()
        if self.s3 is not None:
            # Named after the stack's folder (townflow-<random>): S3 bucket names are lower case, no
            # `_`, and end in a letter or digit (a folder's random part may end in `_`).
            self.s3_bucket = self.s3.bucket(self.workdir.name.lower().replace("_", "-").rstrip("-"))
            if self.evidence_lock_days:
                self.s3_evidence_bucket = self.s3.bucket(f"{self.s3_bucket}-evidence", object_lock=True)
        return self

    def service_env(self, name: str) -> dict[str, str]:
        assert self.kafka is not None and self.postgres is not None
        env = {
            "TOWNFLOW_SERVICE_NAME": name,
            "TOWNFLOW_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "TOWNFLOW_DATABASE_URL": self.postgres.dsn(name),
            # Tokens as in production: RS256 from an issuer's JWKS, this service's own audience.
            "TOWNFLOW_JWT_JWKS_URL": self.issuer.jwks_url,
            "TOWNFLOW_JWT_ISSUER": self.issuer.url,
            "TOWNFLOW_JWT_AUDIENCE": audience_of(name),
            "TOWNFLOW_JWT_JWKS_REFETCH_SECONDS": "0",  # a rotated key is picked up at once here
            "TOWNFLOW_OUTBOX_POLL_SECONDS": "0.5",
            "TOWNFLOW_LAG_SECONDS": "5",
            # An idle consumer's long poll held 2 s at the broker, not 0.5: a record still comes back
            # as soon as it is there (fetch_min_bytes 1), but an idle stack (most of a test's life)
            # spends 6.3-6.6 % of a core instead of 7.1-8.3 % (twice each over 90 s, the machine
            # shared: the broker 2.3-2.5 % instead of 3.0-3.3, the four services 3.4-3.5 % instead of
            # 3.5-4.3), and `make test` starts ten stacks.
            "TOWNFLOW_KAFKA_FETCH_MAX_WAIT_MS": "2000",
        }
        if name == "intake":
            env["TOWNFLOW_CITIZEN_REF_KEY"] = self.citizen_ref_key
            env |= self.intake_keys
        if name in PHOTO_TAKERS and self.s3 is not None and self.s3_bucket is not None:
            env |= self.s3.env(self.s3_bucket)
            if name == "enforcement" and self.s3_evidence_bucket is not None:
                env |= {"TOWNFLOW_S3_EVIDENCE_BUCKET": self.s3_evidence_bucket,
                        "TOWNFLOW_S3_EVIDENCE_RETENTION_DAYS": str(self.evidence_lock_days)}
        if self.test_clock:
            env["TOWNFLOW_TEST_CLOCK"] = "1"
        if name == "intake" and self.receivers is not None:  # the SMS gateway stand-in, when it runs one
            env |= {"TOWNFLOW_SMS_POLL_SECONDS": "0.5", **self.receivers.intake_env()}
        if name == "notify":
            env["TOWNFLOW_SEND_POLL_SECONDS"] = "0.5"
            if self.receivers is not None:
                env |= self.receivers.notify_env()
        return env | self.extra_env

    def add_service(self, name: str) -> ServiceProcess:
        """Add the service's replicas (not started) up to its replica count; the first is returned."""
        while len(self.replicas.setdefault(name, [])) < self.replica_count[name]:
            self.add_replica(name)
        return self.replicas[name][0]

    def add_replica(self, name: str) -> ServiceProcess:
        """One more replica of `name` (not started): same database and consumer group, its own port."""
        index = len(self.replicas.setdefault(name, []))
        if name in SUBSCRIBERS and index == 0:  # its database made when first asked for
            self._postgres.create_database(name)
            self._postgres.databases.append(name)
        default = ALL_SERVICES[name]
        port = default if self.preferred_ports and index == 0 and not port_open(default) else free_port()
        process = ServiceProcess(name, port, self.service_env(name) | {"TOWNFLOW_HTTP_PORT": str(port)},
                                 self.workdir / "logs" / f"{name}-{index}.log",
                                 argv=self.service_argv(name) if self.service_argv else [], index=index)
        self.replicas[name].append(process)
        self.replica_count[name] = max(self.replica_count[name], index + 1)
        return process

    def remove_service(self, name: str) -> None:
        """Stop every replica of `name` and drop them (its database stays): a subscriber started for
        a while on a running stack (a test module's notify) leaves `services` as it found it."""
        for process in self.replicas.pop(name, []):
            process.stop()

    def start_services(self, names: list[str] | None = None) -> Stack:
        """Start every replica of the services (all four by default), then wait until all are ready."""
        started = []
        for name in names or list(SERVICES):
            self.add_service(name)
            started += [p.start(wait=False) for p in self.replicas[name] if not p.running]
        for process in started:
            self.wait_ready_on_own_port(process)
        return self

    def wait_ready_on_own_port(self, process: ServiceProcess) -> None:
        """Wait until `process` is ready; one that lost its preferred port to another process
        (another stack started at the same time) starts again on a free one."""
        try:
            process.wait_ready()
        except RuntimeError:
            if not (self.preferred_ports and process.lost_its_port()):
                raise
            process.move_to(free_port())
            process.start(wait=False)
            process.wait_ready()

    def start_console(self, **settings: str) -> ServiceProcess:
        """The staff console on the first replica of each service, signing its tokens with the
        stand-in issuer's key (the services verify them from its JWKS, as they would the county's
        OIDC issuer's); started once, returned when ready. `settings` are more of its own
        (`console_oidc_issuer="…"`: TOWNFLOW_CONSOLE_OIDC_ISSUER)."""
        if self.console is not None and self.console.running:
            return self.console
        self.console = self.console_replica(0, **settings)
        self.wait_ready_on_own_port(self.console.start(wait=False))
        return self.console

    def console_replica(self, index: int = 0, **settings: str) -> ServiceProcess:
        """A console process (not started) on the console's database, as `start_console` runs it:
        another replica of it when `index` > 0 (its own port and log); `settings` as TOWNFLOW_*."""
        assert self.postgres is not None and self.kafka is not None, "start_infra first"
        key_file = self.workdir / "console-signing-key.pem"
        key_file.write_text(self.issuer.signing_key_pem())
        os.chmod(key_file, 0o600)
        port = CONSOLE_PORT if self.preferred_ports and index == 0 and not port_open(CONSOLE_PORT) else free_port()
        env = {
            "TOWNFLOW_SERVICE_NAME": "console",
            "TOWNFLOW_HTTP_PORT": str(port),
            **{f"TOWNFLOW_{name.upper()}_URL": process.url for name, process in self.services.items()},
            "TOWNFLOW_CONSOLE_SIGNING_KEY_FILE": str(key_file),
            "TOWNFLOW_CONSOLE_SIGNING_KID": self.issuer.signing_kid,
            "TOWNFLOW_CONSOLE_TOKEN_ISSUER": self.issuer.url,
            "TOWNFLOW_DATABASE_URL": self.postgres.dsn(CONSOLE_DATABASE),
            # Its audit trail's topic (console.audit.recorded.v1), through its outbox as the services'.
            "TOWNFLOW_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "TOWNFLOW_OUTBOX_POLL_SECONDS": "0.5",
            # Every replica the same: a sign-in at the county's provider may come back to another one.
            "TOWNFLOW_CONSOLE_OIDC_STATE_KEY": self.console_state_key,
        } | {k: v for k, v in self.extra_env.items() if k in ("TOWNFLOW_TOWN_DIR", "TOWNFLOW_OTLP_ENDPOINT",
                                                            "OTEL_BSP_SCHEDULE_DELAY")}
        env |= {f"TOWNFLOW_{k.upper()}": v for k, v in settings.items()}
        return ServiceProcess("console", port, env, self.workdir / "logs" / f"console-{index}.log", index=index)

    def start_replica(self, name: str, index: int, wait: bool = True) -> ServiceProcess:
        """Start one replica again (after stop_replica or kill_replica); the others are untouched."""
        process = self.replica(name, index)
        if process.running:
            raise RuntimeError(f"{process.label} is already running (pid {process.pid})")
        return process.start(wait=wait)

    def stop_replica(self, name: str, index: int) -> ServiceProcess:
        """SIGTERM one replica and wait for it to exit (a rolling deployment's step)."""
        process = self.replica(name, index)
        process.stop()
        return process

    def kill_replica(self, name: str, index: int) -> ServiceProcess:
        """SIGKILL one replica: no chance to commit, flush or leave its consumer group."""
        process = self.replica(name, index)
        process.kill()
        return process

    def wait_ready(self, names: list[str] | None = None, timeout: float = 60.0) -> None:
        """Wait until every running replica of the services (all by default) answers /readyz."""
        for name in names or list(self.replicas):
            for process in self.replicas[name]:
                if process.running:
                    process.wait_ready(timeout)

    # Infrastructure faults: each returns when the fault is in place (or over).
    @property
    def _postgres(self) -> Postgres:
        assert self.postgres is not None, "start_infra first"
        return self.postgres

    @property
    def _kafka(self) -> Kafka:
        assert self.kafka is not None, "start_infra first"
        return self.kafka

    def make_database_read_only(self, name: str) -> None:
        """A managed PostgreSQL failover as a service sees it: its sessions cut, new ones read-only."""
        self._postgres.set_read_only(name, True)

    def make_database_writable(self, name: str) -> None:
        self._postgres.set_read_only(name, False)

    def stop_postgres(self) -> None:
        self._postgres.stop()

    def start_postgres(self) -> None:
        """Start the stopped PostgreSQL again on the same port with the same data."""
        self._postgres.start()

    def stop_kafka(self) -> None:
        self._kafka.stop()

    def start_kafka(self) -> None:
        """Start the stopped broker again on the same ports with the same log directories."""
        self._kafka.start()

    def write_state(self, path: Path) -> None:
        assert self.kafka is not None and self.postgres is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "kafka": self.kafka.bootstrap,
            "postgres": {name: self.postgres.dsn(name) for name in (*SERVICES, *self.replicas, CONSOLE_DATABASE)},
            "services": {name: p.url for name, p in self.services.items()},
            "console": self.console.url if self.console is not None else None,
            "replicas": {name: [{"index": p.index, "url": p.url, "pid": p.pid, "log": str(p.log)}
                                for p in processes] for name, processes in self.replicas.items()},
            "issuer": {"url": self.issuer.url, "kid": self.issuer.signing_kid,
                       "signing_key": self.issuer.signing_key_pem()},
            "workdir": str(self.workdir),
        }, indent=2))
        os.chmod(path, 0o600)

    def stop(self, remove: bool = True) -> None:
        for process in self.all_replicas():
            process.stop()
        if self.console is not None:
            self.console.stop()
        for child in self.extra_children:
            child.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.issuer.stop()
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)
