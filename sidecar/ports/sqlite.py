"""The embedded key store: one SQLite file (WAL mode) through aiosqlite."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from sidecar.errors import Conflict, Unavailable
from sidecar.models import ApiKeyRecord, KeyType, Page
from sidecar.ports.migrations import Migration, pending
from sidecar.ports.rows import KEY_COLUMNS, from_ts, key_to_row, roll_refused, row_to_key, to_ts
from sidecar.ports.sqlite_key_scopes import MIGRATIONS as KEY_SCOPE_MIGRATIONS

__all__ = ["MIGRATIONS", "Migration", "SqliteDatabase", "SqliteKeyStore"]


#: The key store's schema. Other components keep their own ``Migration`` lists in their own
#: modules; ``SqliteDatabase.open`` runs them all, each (component, version) once, in order.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "api_keys",
        1,
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            last4 TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            role TEXT NOT NULL,
            environment TEXT NOT NULL,
            org_id TEXT NOT NULL,
            team_id TEXT,
            user_id TEXT,
            permissions TEXT NOT NULL,
            allowed_origins TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            last_used_at REAL,
            rolled_to TEXT
        );
        CREATE INDEX api_keys_by_org_created ON api_keys (org_id, created_at DESC, id DESC);
        CREATE INDEX api_keys_by_created ON api_keys (created_at DESC, id DESC);
        """,
    ),
    # How long the session tokens exchanged for a key may live (``mark_key_tokens``). Keys made
    # before this may have exchanged tokens unrecorded: they count as having tokens for ever (the
    # end of 9999), so revoking one revokes its tokens for the longest a token can live.
    Migration(
        "api_keys",
        2,
        """
        ALTER TABLE api_keys ADD COLUMN tokens_until REAL;
        UPDATE api_keys SET tokens_until = 253402300799
        """,
    ),
)

#: Everything the key store writes: ``api_keys`` and the key-scope table it keeps in step.
KEY_STORE_MIGRATIONS: tuple[Migration, ...] = (*MIGRATIONS, *KEY_SCOPE_MIGRATIONS)

_SELECT = f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys"  # noqa: S608 - fixed column list
_INSERT = f"INSERT INTO api_keys ({', '.join(KEY_COLUMNS)}) VALUES ({', '.join('?' for _ in KEY_COLUMNS)})"  # noqa: S608


async def _enable_wal(connection: aiosqlite.Connection, attempts: int = 50) -> None:
    """Switch to WAL mode. When several processes open a new file at once the switch can fail with
    'database is locked' without waiting for busy_timeout, so it is retried for a few seconds."""
    for attempt in range(attempts):
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.1)


class SqliteDatabase:
    """One SQLite file (WAL mode) shared by every SQLite-backed store of the process.

    All stores share one connection, so writes go through ``write()`` / ``transaction()``: an
    asyncio lock keeps one task's statements from landing inside another task's transaction.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self.lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, migrations: Sequence[Migration] = KEY_STORE_MIGRATIONS
    ) -> AsyncIterator[SqliteDatabase]:
        path.parent.mkdir(parents=True, exist_ok=True)
        # key digests and sealed secrets: owner only (SQLite gives its -wal and -shm files the same mode)
        await asyncio.to_thread(path.touch, mode=0o600, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            connection.row_factory = aiosqlite.Row
            await connection.execute("PRAGMA busy_timeout=5000")
            await _enable_wal(connection)
            await connection.execute("PRAGMA foreign_keys=ON")
            database = cls(connection)
            await database.migrate(migrations)
            yield database
        finally:
            await connection.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for autocommit writes outside any other task's transaction."""
        async with self.lock:
            yield self.connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception), one task at a time."""
        async with self.lock:
            await self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
                await self.connection.execute("COMMIT")
            except BaseException:
                # A cancellation can land while COMMIT runs on aiosqlite's thread: the transaction may
                # be over already, and a failed ROLLBACK must not replace the original exception
                # (a CancelledError turned into an OperationalError is a task that never stops).
                if self.connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await self.connection.execute("ROLLBACK")
                raise

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        db = self.connection
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL,"
            " PRIMARY KEY (component, version))"
        )
        async with db.execute("SELECT component, version FROM schema_migrations") as cur:
            done = {(row[0], row[1]) for row in await cur.fetchall()}
        for migration in pending(migrations, done):
            # re-check inside the write lock: another process may have migrated meanwhile
            async with (
                self.transaction(),
                db.execute(
                    "SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?",
                    (migration.component, migration.version),
                ) as cur,
            ):
                if await cur.fetchone() is None:
                    for statement in filter(str.strip, migration.sql.split(";")):
                        await db.execute(statement)
                    await db.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, strftime('%s','now'))",
                        (migration.component, migration.version),
                    )


@contextmanager
def _guarded() -> Iterator[None]:
    """Store failures as the domain sees them: a duplicate is a ``Conflict``, the rest ``Unavailable``."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict("an API key with this id or digest already exists", reason="key_exists") from exc
    except (sqlite3.Error, ValueError) as exc:
        raise Unavailable("the key store is unavailable", reason="store_unavailable") from exc


class SqliteKeyStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database
        self._db = database.connection

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[SqliteKeyStore]:
        """A key store on its own database file (for tools and tests that need only keys)."""
        async with SqliteDatabase.open(path, KEY_STORE_MIGRATIONS) as database:
            yield cls(database)

    async def ping(self) -> None:
        with _guarded():
            await self._db.execute("SELECT 1")

    async def _one(self, sql: str, params: tuple[Any, ...]) -> ApiKeyRecord | None:
        with _guarded():
            async with self._db.execute(sql, params) as cur:
                row = await cur.fetchone()
        return None if row is None else row_to_key(row)

    async def insert_key(self, record: ApiKeyRecord) -> None:
        with _guarded():
            async with self._database.write() as db:
                await db.execute(_INSERT, key_to_row(record))

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._one(f"{_SELECT} WHERE id = ?", (key_id,))

    async def get_key_by_digest(self, digest: str) -> ApiKeyRecord | None:
        return await self._one(f"{_SELECT} WHERE digest = ?", (digest,))

    async def list_keys(
        self,
        *,
        org_id: str | None,
        key_type: KeyType | None,
        limit: int,
        starting_after: str | None,
    ) -> Page[ApiKeyRecord]:
        where: list[str] = []
        params: list[Any] = []
        if org_id is not None:
            where.append("org_id = ?")
            params.append(org_id)
        if key_type is not None:
            where.append("type = ?")
            params.append(key_type.value)
        if starting_after is not None:
            cursor = await self.get_key(starting_after)
            if cursor is None:
                return Page(data=[], has_more=False)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [to_ts(cursor.created_at), to_ts(cursor.created_at), cursor.id]
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)
        with _guarded():
            async with self._db.execute(sql, params) as cur:
                rows = await cur.fetchall()
        records = [row_to_key(r) for r in rows]
        return Page(data=records[:limit], has_more=len(records) > limit)

    async def count_keys(self) -> int:
        with _guarded():
            async with self._db.execute("SELECT count(*) FROM api_keys") as cur:
                row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        with _guarded():
            async with self._database.write() as db:
                await db.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (to_ts(at), key_id)
                )
        return await self.get_key(key_id)

    async def mark_key_tokens(self, key_id: str, until: datetime) -> bool:
        with _guarded():
            async with self._database.write() as db:
                cur = await db.execute(
                    "UPDATE api_keys SET tokens_until = max(coalesce(tokens_until, 0), ?)"
                    " WHERE id = ? AND revoked_at IS NULL",
                    (to_ts(until), key_id),
                )
                return cur.rowcount == 1

    async def key_tokens_until(self, key_id: str) -> datetime | None:
        with _guarded():
            async with self._db.execute("SELECT tokens_until FROM api_keys WHERE id = ?", (key_id,)) as cur:
                row = await cur.fetchone()
        return None if row is None else from_ts(row[0])

    async def roll_key(self, old_id: str, old_expires_at: datetime, new: ApiKeyRecord) -> None:
        with _guarded():
            async with self._database.transaction() as db:
                cur = await db.execute(
                    "UPDATE api_keys SET expires_at = ?, rolled_to = ?"
                    " WHERE id = ? AND rolled_to IS NULL AND revoked_at IS NULL",
                    (to_ts(old_expires_at), new.id, old_id),
                )
                if cur.rowcount != 1:
                    async with db.execute("SELECT rolled_to, revoked_at FROM api_keys WHERE id = ?", (old_id,)) as c:
                        raise roll_refused(old_id, await c.fetchone())
                await db.execute(_INSERT, key_to_row(new))

    async def set_key_scopes(self, key_id: str, scopes: Sequence[str]) -> None:
        """Replace the key's rows in ``api_key_scopes`` (sidecar/ports/sqlite_key_scopes.py)."""
        with _guarded():
            async with self._database.transaction() as db:
                await db.execute("DELETE FROM api_key_scopes WHERE key_id = ?", (key_id,))
                await db.executemany(
                    "INSERT INTO api_key_scopes (key_id, scope) VALUES (?, ?)",
                    [(key_id, s) for s in dict.fromkeys(scopes)],
                )

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        with _guarded():
            async with self._database.write() as db:
                await db.executemany(
                    "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
                    [(to_ts(at), key_id) for key_id, at in last_used.items()],
                )
