"""The database tier: PostgreSQL alone — no Kafka, no services. One throw-away cluster for the
session (devstack's own PostgreSQL helper, the one the stack uses); each test asks for
`fresh_database` and gets an empty database of its own in it, so no test sees another's rows."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.postgres import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL cluster, started once (about 2 s) and removed after."""
    workdir = Path(tempfile.mkdtemp(prefix="townflow-db-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - PostgreSQL (as `postgres` when we are root) must traverse it
    cluster = Postgres(workdir / "postgres")
    try:
        yield cluster.start()
    finally:
        if cluster.child is not None and cluster.child.proc is not None:
            # Immediate shutdown (no checkpoint, ~8 s saved): the data is thrown away next.
            cluster.child.proc.send_signal(signal.SIGQUIT)
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def fresh_database(postgres: Postgres) -> str:
    """The DSN of a new, empty database that only this test uses."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    return postgres.dsn(name)
