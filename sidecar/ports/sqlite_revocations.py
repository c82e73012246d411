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
    # Each write takes the next ``seq`` (writes to one file are serialised, so ``seq`` follows
    # commit order): a replica reads on from the largest it has seen (``revocations_since``).
    Migration(
        "token_revocations",
        2,
        """
        ALTER TABLE token_revocations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX token_revocations_by_seq ON token_revocations (seq)
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
                    "INSERT INTO token_revocations (kind, subject, until, seq)"
                    " VALUES (?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM token_revocations))"
                    " ON CONFLICT (kind, subject) DO UPDATE SET until = max(until, excluded.until), seq = excluded.seq",
                    (kind, subject, to_ts(until)),
                )
        except sqlite3.Error as exc:
            raise Unavailable("the revocation store is unavailable", reason="store_unavailable") from exc

    async def revocations_since(self, cursor: int | None, now: datetime) -> tuple[list[tuple[str, str, datetime]], int]:
        try:
            async with self._database.write() as db:
                # the newest row stays even when expired: the next write's seq must exceed every seq read
                await db.execute(
                    "DELETE FROM token_revocations WHERE until <= ? AND seq < (SELECT max(seq) FROM token_revocations)",
                    (to_ts(now),),
                )
                async with db.execute(
                    "SELECT kind, subject, until, seq FROM token_revocations WHERE seq > ?",
                    (-1 if cursor is None else cursor,),
                ) as cur:
                    rows = await cur.fetchall()
        except sqlite3.Error as exc:
            raise Unavailable("the revocation store is unavailable", reason="store_unavailable") from exc
        now_ts = now.timestamp()
        active = [(row[0], row[1], _at(row[2])) for row in rows if row[2] > now_ts]
        return active, max((int(row[3]) for row in rows), default=-1 if cursor is None else cursor)


def _at(ts: float) -> datetime:
    at = from_ts(ts)
    assert at is not None
    return at
