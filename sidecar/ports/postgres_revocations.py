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
    # The transaction that last wrote each row: a replica reads on from the oldest transaction
    # still running when it last read (``revocations_since``), so a write committed after that
    # read, whatever its id, is read the next time. PostgreSQL 13 or later.
    Migration(
        "token_revocations",
        2,
        """
        ALTER TABLE token_revocations ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
        CREATE INDEX token_revocations_by_txid ON token_revocations (txid);
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
                " SET until = greatest(token_revocations.until, excluded.until), txid = pg_current_xact_id()",
                kind,
                subject,
                to_ts(until),
            )

    async def revocations_since(self, cursor: int | None, now: datetime) -> tuple[list[tuple[str, str, datetime]], int]:
        async with self._db.connection() as conn:
            await conn.execute("DELETE FROM token_revocations WHERE until <= $1", to_ts(now))
            # one snapshot for both: every transaction older than its xmin has ended and is in it
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                horizon = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
                rows = await conn.fetch(
                    "SELECT kind, subject, until FROM token_revocations WHERE until > $1 AND txid >= $2::text::xid8",
                    to_ts(now),
                    str(cursor or 0),
                )
        result = []
        for row in rows:
            until = from_ts(row["until"])
            assert until is not None
            result.append((str(row["kind"]), str(row["subject"]), until))
        return result, int(horizon)
