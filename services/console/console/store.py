"""Every SQL statement of the console: its sessions and its failed sign-ins (migrations/). Times
are the database's, so all replicas read one clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from .session import Session, SessionStore, id_hash, new_token, session_data, session_from


class PgSessions(SessionStore):
    def __init__(self, pool: asyncpg.Pool, idle_seconds: float, lifetime_seconds: float) -> None:
        self.pool = pool
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds

    async def begin(self, session: Session) -> str:
        session_id = new_token()
        async with self.pool.acquire() as conn, conn.transaction():
            # Sessions past their lifetime are of no use to anyone: cleared as new ones begin.
            await conn.execute("DELETE FROM sessions WHERE started_at < now() - make_interval(secs => $1)",
                               self.lifetime_seconds)
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

    async def end(self, session_id: str) -> None:
        await self.pool.execute("UPDATE sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL",
                                id_hash(session_id))

    async def update(self, session_id: str, session: Session) -> None:
        await self.pool.execute("UPDATE sessions SET data = $2 WHERE id_hash = $1 AND ended_at IS NULL",
                                id_hash(session_id), session_data(session))


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

    async def save(self, failures: dict[str, list[datetime]]) -> None:
        await self.conn.execute(
            "UPDATE sign_in_failures f SET failures = s.failures FROM jsonb_each($1::jsonb) AS e(subject, at),"
            " LATERAL (SELECT coalesce(array_agg(x::timestamptz), '{}') AS failures"
            " FROM jsonb_array_elements_text(e.at) AS x) s WHERE f.subject = e.subject",
            {subject: [at.isoformat() for at in times] for subject, times in failures.items()})
