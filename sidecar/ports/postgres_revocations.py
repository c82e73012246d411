"""Revoked session tokens in PostgreSQL, shared by every replica."""

from __future__ import annotations

from datetime import datetime

from sidecar.ports.migrations import Migration
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.rows import from_ts, to_ts

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "token_revocations",
        1,
        """
        CREATE TABLE token_revocations (
            kind TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL,
            until DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (kind, subject)
        );
        CREATE INDEX token_revocations_by_until ON token_revocations (until);
        """,
    ),
)


class PostgresRevocationStore:
    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def add_revocation(self, kind: str, subject: str, until: datetime) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO token_revocations (kind, subject, until) VALUES ($1, $2, $3)"
                " ON CONFLICT (kind, subject) DO UPDATE"
                " SET until = greatest(token_revocations.until, excluded.until)",
                kind,
                subject,
                to_ts(until),
            )

    async def active_revocations(self, now: datetime) -> list[tuple[str, str, datetime]]:
        async with self._db.connection() as conn:
            await conn.execute("DELETE FROM token_revocations WHERE until <= $1", to_ts(now))
            rows = await conn.fetch("SELECT kind, subject, until FROM token_revocations")
        result = []
        for row in rows:
            until = from_ts(row["until"])
            assert until is not None
            result.append((str(row["kind"]), str(row["subject"]), until))
        return result
