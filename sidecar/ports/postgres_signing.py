"""The JWT signing keys in PostgreSQL (private halves sealed by the domain), shared by replicas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sidecar.models import SigningKeyRecord
from sidecar.ports.migrations import Migration
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.rows import from_ts, to_ts

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "signing_keys",
        1,
        """
        CREATE TABLE signing_keys (
            kid TEXT COLLATE "C" PRIMARY KEY,
            algorithm TEXT NOT NULL,
            private_sealed TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            activates_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX signing_keys_by_activation ON signing_keys (activates_at);
        """,
    ),
)

_COLUMNS = "kid, algorithm, private_sealed, created_at, activates_at"


def _record(row: Any) -> SigningKeyRecord:
    created, activates = from_ts(row["created_at"]), from_ts(row["activates_at"])
    assert created is not None
    assert activates is not None
    return SigningKeyRecord(row["kid"], row["algorithm"], row["private_sealed"], created, activates)


class PostgresSigningKeyStore:
    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM signing_keys ORDER BY activates_at, kid")  # noqa: S608
        return [_record(row) for row in rows]

    async def insert_signing_key(self, record: SigningKeyRecord, *, unless_activating_after: datetime | None) -> bool:
        values = (record.kid, record.algorithm, record.private_sealed, to_ts(record.created_at))
        async with self._db.connection() as conn:
            if unless_activating_after is None:
                status = await conn.execute(
                    f"INSERT INTO signing_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5)",  # noqa: S608
                    *values,
                    to_ts(record.activates_at),
                )
            else:
                # the advisory lock serialises rotations across replicas; the check and insert share it
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sidecar.signing_keys'))")
                    status = await conn.execute(
                        f"INSERT INTO signing_keys ({_COLUMNS}) SELECT $1, $2, $3, $4, $5"  # noqa: S608
                        " WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at > $6)",
                        *values,
                        to_ts(record.activates_at),
                        to_ts(unless_activating_after),
                    )
        return str(status) == "INSERT 0 1"
