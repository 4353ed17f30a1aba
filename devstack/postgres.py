"""A throw-away PostgreSQL cluster from the machine's binaries, one database per service.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster runs as the `postgres`
user that the Debian package creates, in a folder handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .processes import Child, free_port, wait_until


def pg_bindir() -> Path:
    if env := os.environ.get("TOWNFLOW_PG_BINDIR"):
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        if which := shutil.which("postgres"):
            return Path(which).parent
        raise RuntimeError("PostgreSQL server binaries not found; install postgresql (15+)")
    return Path(found[-1]).parent


def _run_as() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


@dataclass
class Postgres:
    workdir: Path
    databases: list[str] = field(default_factory=list)
    port: int = 0
    child: Child | None = None

    @property
    def user(self) -> str:
        return "postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        if (user := _run_as()) is not None:
            entry = pwd.getpwnam(user)
            for p in [path, *path.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", user, "--", *argv] if (user := _run_as()) else argv

    def start(self, timeout: float = 60.0) -> Postgres:
        bindir = pg_bindir()
        self.port = self.port or free_port()
        data = self.workdir / "data"
        sockets = self.workdir / "sockets"
        self.workdir.mkdir(parents=True, exist_ok=True)
        sockets.mkdir(exist_ok=True)
        os.chmod(self.workdir, 0o755)  # noqa: S103 - the `postgres` user must enter it; the data dir inside stays 0700
        self._chown(self.workdir)
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                self._as_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                               "-U", "postgres", "-E", "UTF8", "--no-locale"]),
                check=True, capture_output=True,
            )
        self.child = Child(
            "postgres",
            [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-k", str(sockets), "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=200", "-c", "shared_buffers=128MB",
             "-c", "fsync=on", "-c", "synchronous_commit=on"],
            log=self.workdir / "postgres.log",
            user=_run_as(),
            stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for clients
        ).start()
        wait_until(self._ready, timeout, f"PostgreSQL on port {self.port}")
        for db in self.databases:
            self.create_database(db)
        return self

    def _psql(self, sql: str, database: str = "postgres", **variables: str) -> subprocess.CompletedProcess[str]:
        """One statement through psql, which takes no bind parameters: values go in as psql
        variables (`:'name'` a literal, `:"name"` an identifier), quoted by psql itself."""
        argv = [str(pg_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", database, "-v", "ON_ERROR_STOP=1", "-tA"]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        # From stdin: psql substitutes variables there, not in a -c command.
        return subprocess.run([*argv, "-f", "-"], input=sql, capture_output=True, text=True)

    def _ready(self) -> bool:
        assert self.child is not None
        self.child.check_alive()
        return self._psql("select 1").returncode == 0

    def create_database(self, name: str) -> None:
        _check_name(name)
        exists = self._psql("select 1 from pg_database where datname = :'name'", name=name).stdout.strip()
        if not exists:
            result = self._psql('create database :"name"', name=name)
            if result.returncode != 0:
                raise RuntimeError(f"create database {name}: {result.stderr}")

    def set_read_only(self, database: str, read_only: bool) -> int:
        """What a service sees of a managed PostgreSQL failover, and of the way back: its sessions are
        cut and every new one starts read-only (or writable again). Returns how many sessions were cut.

        Two statements, two transactions: sessions cut before the setting commits would reconnect
        with the old default."""
        _check_name(database)
        change = ('ALTER DATABASE :"name" SET default_transaction_read_only = on' if read_only
                  else 'ALTER DATABASE :"name" RESET default_transaction_read_only')
        cut = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
               " WHERE datname = :'name' AND pid <> pg_backend_pid()")
        for sql in (change, cut):
            result = self._psql(sql, name=database)
            if result.returncode != 0:
                raise RuntimeError(f"{sql}: {result.stderr}")
        return int(result.stdout.strip() or 0)

    def is_read_only(self, database: str) -> bool:
        return self._psql("SHOW default_transaction_read_only", database).stdout.strip() == "on"

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected; `start` brings it back on the same port."""
        if self.child is not None:
            self.child.stop(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


def _check_name(database: str) -> None:
    """Only plain names: they are also folder-safe and need no quoting in a DSN."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
        raise ValueError(f"not a database name: {database!r}")
