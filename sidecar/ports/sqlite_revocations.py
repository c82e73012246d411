"""Revoked session tokens in the embedded SQLite database."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from sidecar.errors import Unavailable
from sidecar.ports.migrations import Migration
from sidecar.ports.rows import from_ts, to_ts
from sidecar.ports.sqlite import SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "token_revocations",
        1,
        """
        CREATE TABLE token_revocations (
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            until REAL NOT NULL,
            PRIMARY KEY (kind, subject)
        );
        CREATE INDEX token_revocations_by_until ON token_revocations (until)
        """,
    ),
)


class SqliteRevocationStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def add_revocation(self, kind: str, subject: str, until: datetime) -> None:
        try:
            async with self._database.write() as db:
                await db.execute(
                    "INSERT INTO token_revocations (kind, subject, until) VALUES (?, ?, ?)"
                    " ON CONFLICT (kind, subject) DO UPDATE SET until = max(until, excluded.until)",
                    (kind, subject, to_ts(until)),
                )
        except sqlite3.Error as exc:
            raise Unavailable("the revocation store is unavailable", reason="store_unavailable") from exc

    async def active_revocations(self, now: datetime) -> list[tuple[str, str, datetime]]:
        try:
            async with self._database.write() as db:
                await db.execute("DELETE FROM token_revocations WHERE until <= ?", (to_ts(now),))
                async with db.execute("SELECT kind, subject, until FROM token_revocations") as cur:
                    rows = await cur.fetchall()
        except sqlite3.Error as exc:
            raise Unavailable("the revocation store is unavailable", reason="store_unavailable") from exc
        return [(row[0], row[1], _at(row[2])) for row in rows]


def _at(ts: float) -> datetime:
    at = from_ts(ts)
    assert at is not None
    return at
