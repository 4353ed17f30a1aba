"""Databases for the tests of this tier: one migrated to the end for a test's pool, or one as it was
before a change, to test that change's migration on rows written before it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from devstack.postgres import Postgres
from townflow_shared.db import SHARED_MIGRATIONS, create_pool, migrate


@asynccontextmanager
async def migrated(dsn: str, *migrations: Path, max_size: int = 2) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the database `dsn` with the shared migrations and then `migrations` (a service's
    folder) applied, closed after."""
    pool = await create_pool(dsn, min_size=1, max_size=max_size)
    try:
        await migrate(pool, [SHARED_MIGRATIONS, *migrations])
        yield pool
    finally:
        await pool.close()


async def database_before(postgres: Postgres, migrations: Path, before: str, tmp_path: Path) -> asyncpg.Pool:
    """A new database on `postgres` with the shared migrations and the service's own migrations
    named below `before` (e.g. "006"); the caller closes the pool."""
    name = f"before_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    pool = await create_pool(postgres.dsn(name), min_size=1, max_size=2)
    await migrate(pool, [SHARED_MIGRATIONS, _older(migrations, before, tmp_path)])
    return pool


async def old_rows_take_the_town(pool: asyncpg.Pool, migrations: Path, migration: str, town: str,
                                 tables: Sequence[str]) -> None:
    """Migrate `pool` to the end with `town` as the legacy town (TOWNFLOW_LEGACY_TOWN_CODE): the
    county `migration` runs and every row of `tables` written before it now belongs to `town`."""
    applied = await migrate(pool, [SHARED_MIGRATIONS, migrations], default_town=town)
    assert f"{migrations.parent.name}/{migration}" in applied
    for table in tables:
        towns = [r["town_code"] for r in await pool.fetch(f"SELECT town_code FROM {table}")]
        assert towns and set(towns) == {town}, table


def _older(migrations: Path, before: str, tmp_path: Path) -> Path:
    """A copy of the migrations named below `before`, in a folder named like the real one (so the
    applied names match when the real folder is applied after)."""
    folder = tmp_path / migrations.parent.name / "migrations"
    folder.mkdir(parents=True)
    for path in sorted(migrations.glob("*.sql")):
        if path.name < before:
            shutil.copy(path, folder / path.name)
    return folder


def plan_nodes(plan: dict[str, object]) -> list[dict[str, object]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, the root first."""
    nodes = [plan]
    for child in plan.get("Plans", []):  # type: ignore[union-attr]
        nodes += plan_nodes(child)
    return nodes
