"""Every SQL statement of the console: its sessions and its failed sign-ins (migrations/), each
with its audit records in the same transaction (the shared audit tables, written through
townflow_shared.audit_trail). Times are the database's, so all replicas read one clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from townflow_shared.audit import Entry
from townflow_shared.audit_trail import write_records

from . import session_audit
from .session import Session, SessionStore, id_hash, new_token, session_data, session_from
from .session_audit import Account, Where


class PgSessions(SessionStore):
    def __init__(self, pool: asyncpg.Pool, idle_seconds: float, lifetime_seconds: float) -> None:
        self.pool = pool
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds

    async def begin(self, session: Session) -> str:
        session_id = new_token()
        async with self.pool.acquire() as conn, conn.transaction():
            # Sessions past their lifetime are of no use to anyone: cleared as new ones begin, once
            # ended (their end is in the audit trail: `end_expired`).
            await conn.execute("DELETE FROM sessions WHERE started_at < now() - make_interval(secs => $1)"
                               " AND ended_at IS NOT NULL", self.lifetime_seconds)
            await conn.execute("INSERT INTO sessions (id_hash, data) VALUES ($1, $2)",
                               id_hash(session_id), session_data(session))
        return session_id

    async def resume(self, session_id: str, *, activity: bool) -> Session | None:
        data = await self.pool.fetchval(
            "UPDATE sessions SET seen_at = CASE WHEN $2 THEN now() ELSE seen_at END"
            " WHERE id_hash = $1 AND ended_at IS NULL"
            " AND seen_at > now() - make_interval(secs => $3) AND started_at > now() - make_interval(secs => $4)"
            " RETURNING data", id_hash(session_id), activity, self.idle_seconds, self.lifetime_seconds)
        return session_from(data) if data is not None else None

    async def end(self, session_id: str, action: str, where: Where) -> None:
        """The session ends, with its audit record (`action`: a sign-out …), once: a session that
        ended already (two sign-outs at once, another replica's) leaves no second record."""
        async with self.pool.acquire() as conn, conn.transaction():
            ended = await conn.fetchrow("UPDATE sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL"
                                        " RETURNING data, ended_at", id_hash(session_id))
            if ended is not None and (person := session_from(ended["data"]).person) is not None:
                await write_records(conn, [session_audit.record(
                    action, ended["ended_at"], Account.of(person, signed_in=True), where)])

    async def end_expired(self) -> int:
        """End the sessions past their idle time or lifetime, each with its audit record at the
        moment it ran out (`resume` refuses them already; this is their record). Replicas may run
        it at once: a row another ended meanwhile is skipped, so each end is recorded once."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE sessions SET ended_at = now() WHERE ended_at IS NULL"
                " AND (seen_at <= now() - make_interval(secs => $1) OR started_at <= now() - make_interval(secs => $2))"
                " RETURNING data, seen_at, started_at", self.idle_seconds, self.lifetime_seconds)
            entries = [_expiry(r["data"], r["seen_at"] + timedelta(seconds=self.idle_seconds),
                               r["started_at"] + timedelta(seconds=self.lifetime_seconds)) for r in rows]
            await write_records(conn, [e for e in entries if e is not None])
        return len(rows)

    async def update(self, session_id: str, session: Session) -> None:
        await self.pool.execute("UPDATE sessions SET data = $2 WHERE id_hash = $1 AND ended_at IS NULL",
                                id_hash(session_id), session_data(session))


def _expiry(data: dict[str, Any], idle_at: datetime, lifetime_at: datetime) -> Entry | None:
    person = session_from(data).person
    if person is None:
        return None
    action = session_audit.IDLE_TIMEOUT if idle_at < lifetime_at else session_audit.LIFETIME_END
    return session_audit.record(action, min(idle_at, lifetime_at), Account.of(person, signed_in=True),
                                session_audit.NOWHERE)


class AuditRecords:
    """Records of what has no transaction of its own in the console (a sign-in at the county's
    provider, accepted or refused): written in one of their own, at the database's time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def write(self, build: Callable[[datetime], Sequence[Entry]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await write_records(conn, build(await conn.fetchval("SELECT now()")))


class SignInFailures:
    """Failed sign-ins per subject (`login:…`, `address:…`). `for_update` locks the subjects' rows
    until the transaction ends, so two replicas count concurrent attempts one after the other."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def for_update(self, subjects: Sequence[str]) -> tuple[datetime, dict[str, list[datetime]]]:
        """The database's now, and each subject's failures (rows made first, so there is one to lock)."""
        await self.conn.execute("INSERT INTO sign_in_failures (subject) SELECT unnest($1::text[])"
                                " ON CONFLICT (subject) DO NOTHING", list(subjects))
        rows = await self.conn.fetch("SELECT subject, failures, now() AS now FROM sign_in_failures"
                                     " WHERE subject = ANY($1::text[]) ORDER BY subject FOR UPDATE", list(subjects))
        return rows[0]["now"], {r["subject"]: list(r["failures"]) for r in rows}

    async def record(self, entries: Sequence[Entry]) -> None:
        await write_records(self.conn, entries)

    async def save(self, failures: dict[str, list[datetime]]) -> None:
        await self.conn.execute(
            "UPDATE sign_in_failures f SET failures = s.failures FROM jsonb_each($1::jsonb) AS e(subject, at),"
            " LATERAL (SELECT coalesce(array_agg(x::timestamptz), '{}') AS failures"
            " FROM jsonb_array_elements_text(e.at) AS x) s WHERE f.subject = e.subject",
            {subject: [at.isoformat() for at in times] for subject, times in failures.items()})
