"""The JWT signing keys in the embedded SQLite database (private halves sealed by the domain)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from sidecar.errors import Unavailable
from sidecar.models import SigningKeyRecord
from sidecar.ports.migrations import Migration
from sidecar.ports.rows import Row, from_ts, to_ts
from sidecar.ports.sqlite import SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "signing_keys",
        1,
        """
        CREATE TABLE signing_keys (
            kid TEXT PRIMARY KEY,
            algorithm TEXT NOT NULL,
            private_sealed TEXT NOT NULL,
            created_at REAL NOT NULL,
            activates_at REAL NOT NULL
        );
        CREATE INDEX signing_keys_by_activation ON signing_keys (activates_at)
        """,
    ),
)

_COLUMNS = "kid, algorithm, private_sealed, created_at, activates_at"


def _record(row: Row) -> SigningKeyRecord:
    created, activates = from_ts(row["created_at"]), from_ts(row["activates_at"])
    assert created is not None
    assert activates is not None
    return SigningKeyRecord(
        kid=row["kid"],
        algorithm=row["algorithm"],
        private_sealed=row["private_sealed"],
        created_at=created,
        activates_at=activates,
    )


class SqliteSigningKeyStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database
        self._db = database.connection

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        try:
            async with self._db.execute(
                f"SELECT {_COLUMNS} FROM signing_keys ORDER BY activates_at, kid"  # noqa: S608 - fixed columns
            ) as cur:
                rows = await cur.fetchall()
        except (sqlite3.Error, ValueError) as exc:
            raise Unavailable("the signing key store is unavailable", reason="store_unavailable") from exc
        return [_record(row) for row in rows]

    async def insert_signing_key(self, record: SigningKeyRecord, *, unless_activating_after: datetime | None) -> bool:
        values = (record.kid, record.algorithm, record.private_sealed, to_ts(record.created_at))
        if unless_activating_after is None:
            sql = f"INSERT INTO signing_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608 - fixed columns
            params: tuple[object, ...] = (*values, to_ts(record.activates_at))
        else:
            # one statement, so the check and the insert are atomic across processes
            sql = (
                f"INSERT INTO signing_keys ({_COLUMNS}) SELECT ?, ?, ?, ?, ?"  # noqa: S608 - fixed columns
                " WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at > ?)"
            )
            params = (*values, to_ts(record.activates_at), to_ts(unless_activating_after))
        async with self._database.write() as db, db.execute(sql, params) as cur:
            return cur.rowcount == 1
