"""The whole local system: Kafka, PostgreSQL (one database per service) and the services."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .kafka import Kafka
from .postgres import Postgres
from .processes import Child, free_port, port_open, wait_until

REPO = Path(__file__).resolve().parent.parent
SERVICES: dict[str, int] = {"intake": 8001, "dispatch": 8002, "enforcement": 8003, "appraisal": 8004}


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    child: Child | None = None
    argv: list[str] = field(default_factory=list)  # how it is launched; `python -m <name>` if empty

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, **overrides: str) -> ServiceProcess:
        env = {**os.environ, **self.env, **{f"TOWNFLOW_{k.upper()}": v for k, v in overrides.items()}}
        self.child = Child(self.name, self.argv or [sys.executable, "-m", self.name], log=self.log, env=env,
                           cwd=REPO).start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            assert self.child is not None
            self.child.check_alive()
            return http_ok(f"{self.url}/readyz")

        wait_until(ready, timeout, f"{self.name} /readyz on port {self.port}")

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


@dataclass
class Stack:
    workdir: Path
    test_clock: bool = False
    preferred_ports: bool = False
    kafka_heap: str = "512m"
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    citizen_ref_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    kafka: Kafka | None = None
    postgres: Postgres | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    extra_children: list[Child] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    # How each service is launched, when not `python -m <name>` (the profiler wraps it).
    service_argv: Callable[[str], list[str]] | None = None

    @classmethod
    def in_temp_dir(cls, **kwargs: object) -> Stack:
        # PostgreSQL runs as `postgres` when we are root, so the folder must be traversable.
        workdir = Path(tempfile.mkdtemp(prefix="townflow-"))
        os.chmod(workdir, 0o755)
        return cls(workdir=workdir, **kwargs)  # type: ignore[arg-type]

    def start_infra(self) -> Stack:
        self.kafka = Kafka(self.workdir / "kafka", heap=self.kafka_heap).start()
        self.postgres = Postgres(self.workdir / "postgres", list(SERVICES)).start()
        return self

    def service_env(self, name: str) -> dict[str, str]:
        assert self.kafka is not None and self.postgres is not None
        env = {
            "TOWNFLOW_SERVICE_NAME": name,
            "TOWNFLOW_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "TOWNFLOW_DATABASE_URL": self.postgres.dsn(name),
            "TOWNFLOW_JWT_SECRET": self.jwt_secret,
            "TOWNFLOW_OUTBOX_POLL_SECONDS": "0.5",
            "TOWNFLOW_LAG_SECONDS": "5",
        }
        if name == "intake":
            env["TOWNFLOW_CITIZEN_REF_KEY"] = self.citizen_ref_key
        if self.test_clock:
            env["TOWNFLOW_TEST_CLOCK"] = "1"
        return env | self.extra_env

    def add_service(self, name: str) -> ServiceProcess:
        default = SERVICES[name]
        port = default if self.preferred_ports and not port_open(default) else free_port()
        process = ServiceProcess(name, port, self.service_env(name) | {"TOWNFLOW_HTTP_PORT": str(port)},
                                 self.workdir / "logs" / f"{name}.log",
                                 argv=self.service_argv(name) if self.service_argv else [])
        self.services[name] = process
        return process

    def start_services(self, names: list[str] | None = None) -> Stack:
        started = []
        for name in names or list(SERVICES):
            started.append(self.add_service(name).start(wait=False))
        for process in started:
            process.wait_ready()
        return self

    def write_state(self, path: Path) -> None:
        assert self.kafka is not None and self.postgres is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "kafka": self.kafka.bootstrap,
            "postgres": {name: self.postgres.dsn(name) for name in SERVICES},
            "services": {name: p.url for name, p in self.services.items()},
            "jwt_secret": self.jwt_secret,
            "workdir": str(self.workdir),
        }, indent=2))
        os.chmod(path, 0o600)

    def stop(self, remove: bool = True) -> None:
        for process in self.services.values():
            process.stop()
        for child in self.extra_children:
            child.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)
