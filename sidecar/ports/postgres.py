"""The PostgreSQL key store (``SIDECAR_DATABASE_URL=postgresql://…``) through an asyncpg pool.

Several replicas may share one database: migrations run under a transaction-scoped advisory
lock, and every write is a single statement or one transaction. A database that cannot answer
(refused, dropped connection, timeout, shutting down) is ``Unavailable`` (503), never a 500.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from sidecar.errors import ConfigError, Conflict, Unavailable
from sidecar.models import ApiKeyRecord, KeyType, Page
from sidecar.ports.migrations import Migration, pending
from sidecar.ports.postgres_key_scopes import MIGRATIONS as KEY_SCOPE_MIGRATIONS
from sidecar.ports.rows import KEY_COLUMNS, from_ts, key_to_row, roll_refused, row_to_key, to_ts

#: The key store's schema. Timestamps are UNIX seconds (as in SQLite); ids compare bytewise
#: (``COLLATE "C"``) so the newest-first order breaks ties exactly as SQLite does.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "api_keys",
        1,
        """
        CREATE TABLE api_keys (
            id TEXT COLLATE "C" PRIMARY KEY,
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
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            revoked_at DOUBLE PRECISION,
            last_used_at DOUBLE PRECISION,
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
        ALTER TABLE api_keys ADD COLUMN tokens_until DOUBLE PRECISION;
        UPDATE api_keys SET tokens_until = 253402300799;
        """,
    ),
)

#: Everything the key store writes: ``api_keys`` and the key-scope table it keeps in step.
KEY_STORE_MIGRATIONS: tuple[Migration, ...] = (*MIGRATIONS, *KEY_SCOPE_MIGRATIONS)

#: One lock id for "migrating this database", the same in every replica.
MIGRATION_LOCK_ID = zlib.crc32(b"sidecar.schema_migrations")
#: Migrations (and replicas queueing behind one) may take far longer than a request may.
MIGRATION_TIMEOUT_S = 600.0

#: What "the database cannot answer" looks like from asyncpg: the socket, a timeout, a dropped or
#: refused connection (SQLSTATE class 08), shutdown/cancel (57) and exhausted resources (53).
#: ``InternalClientError`` is asyncpg's protocol state after the server hung up mid-conversation.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

_COLUMNS = ", ".join(KEY_COLUMNS)
_SELECT = f"SELECT {_COLUMNS} FROM api_keys"  # noqa: S608 - fixed column list
_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, len(KEY_COLUMNS) + 1))})"  # noqa: S608


def unavailable(exc: BaseException) -> Unavailable:
    # The exception's text may quote the URL's host or user; the log gets its type only.
    return Unavailable(f"the database is unavailable ({type(exc).__name__})", reason="store_unavailable")


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database, shared by every PostgreSQL-backed store."""

    def __init__(self, pool: asyncpg.Pool, *, timeout_s: float) -> None:
        self.pool = pool
        self.timeout_s = timeout_s

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        migrations: Sequence[Migration] = KEY_STORE_MIGRATIONS,
        *,
        pool_size: int = 10,
        timeout_s: float = 5.0,
    ) -> AsyncIterator[PostgresDatabase]:
        """Connect (``Unavailable`` if the server cannot be reached) and apply pending migrations."""
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, timeout=timeout_s, command_timeout=timeout_s
            )
        except _UNAVAILABLE as exc:
            raise unavailable(exc) from exc
        except asyncpg.PostgresError as exc:  # e.g. unknown database, authentication failed
            raise Unavailable(
                f"the database refused the connection ({type(exc).__name__})", reason="store_unavailable"
            ) from exc
        except ValueError as exc:  # asyncpg's DSN parser; the URL may hold a password, so it is not echoed
            raise ConfigError(f"SIDECAR_DATABASE_URL: not a usable PostgreSQL URL ({exc.__class__.__name__})") from exc
        try:
            database = cls(pool, timeout_s=timeout_s)
            await database.migrate(migrations)
            yield database
        finally:
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; any sign that the database cannot answer becomes ``Unavailable``."""
        try:
            async with self.pool.acquire(timeout=self.timeout_s) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise unavailable(exc) from exc

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply pending migrations in one transaction, holding the migration advisory lock.

        The lock serialises replicas that start together: the second waits, then finds the work
        done. Being transaction-scoped, it is released by commit or rollback, never leaked.
        """
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID, timeout=MIGRATION_TIMEOUT_S)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                " PRIMARY KEY (component, version))"
            )
            done = await conn.fetch("SELECT component, version FROM schema_migrations")
            for migration in pending(migrations, ((r["component"], r["version"]) for r in done)):
                await conn.execute(migration.sql, timeout=MIGRATION_TIMEOUT_S)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)",
                    migration.component,
                    migration.version,
                )


class PostgresKeyStore:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    async def ping(self) -> None:
        async with self._database.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def _one(self, sql: str, *args: Any) -> ApiKeyRecord | None:
        async with self._database.connection() as conn:
            row = await conn.fetchrow(sql, *args)
        return None if row is None else row_to_key(row)

    async def insert_key(self, record: ApiKeyRecord) -> None:
        async with self._database.connection() as conn:
            try:
                await conn.execute(_INSERT, *key_to_row(record))
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("an API key with this id or digest already exists", reason="key_exists") from exc

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._one(f"{_SELECT} WHERE id = $1", key_id)

    async def get_key_by_digest(self, digest: str) -> ApiKeyRecord | None:
        return await self._one(f"{_SELECT} WHERE digest = $1", digest)

    async def list_keys(
        self,
        *,
        org_id: str | None,
        key_type: KeyType | None,
        limit: int,
        starting_after: str | None,
    ) -> Page[ApiKeyRecord]:
        where: list[str] = []
        args: list[Any] = []

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if org_id is not None:
            where.append(f"org_id = {param(org_id)}")
        if key_type is not None:
            where.append(f"type = {param(key_type.value)}")
        if starting_after is not None:
            cursor = await self.get_key(starting_after)
            if cursor is None:
                return Page(data=[], has_more=False)
            where.append(f"(created_at, id) < ({param(to_ts(cursor.created_at))}, {param(cursor.id)})")
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY created_at DESC, id DESC LIMIT {param(limit + 1)}"
        async with self._database.connection() as conn:
            rows = await conn.fetch(sql, *args)
        records = [row_to_key(r) for r in rows]
        return Page(data=records[:limit], has_more=len(records) > limit)

    async def count_keys(self) -> int:
        async with self._database.connection() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM api_keys"))

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        return await self._one(
            f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 RETURNING {_COLUMNS}",  # noqa: S608
            to_ts(at),
            key_id,
        )

    async def mark_key_tokens(self, key_id: str, until: datetime) -> bool:
        async with self._database.connection() as conn:
            marked = await conn.fetchval(
                "UPDATE api_keys SET tokens_until = greatest(coalesce(tokens_until, 0), $1)"
                " WHERE id = $2 AND revoked_at IS NULL RETURNING id",
                to_ts(until),
                key_id,
            )
        return marked is not None

    async def key_tokens_until(self, key_id: str) -> datetime | None:
        async with self._database.connection() as conn:
            until = await conn.fetchval("SELECT tokens_until FROM api_keys WHERE id = $1", key_id)
        return from_ts(until)

    async def roll_key(self, old_id: str, old_expires_at: datetime, new: ApiKeyRecord) -> None:
        async with self._database.connection() as conn, conn.transaction():
            updated = await conn.fetchval(
                "UPDATE api_keys SET expires_at = $1, rolled_to = $2"
                " WHERE id = $3 AND rolled_to IS NULL AND revoked_at IS NULL RETURNING id",
                to_ts(old_expires_at),
                new.id,
                old_id,
            )
            if updated is None:
                raise roll_refused(
                    old_id, await conn.fetchrow("SELECT rolled_to, revoked_at FROM api_keys WHERE id = $1", old_id)
                )
            try:
                await conn.execute(_INSERT, *key_to_row(new))
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("an API key with this id or digest already exists", reason="key_exists") from exc

    async def set_key_scopes(self, key_id: str, scopes: Sequence[str]) -> None:
        """Replace the key's rows in ``api_key_scopes`` (sidecar/ports/postgres_key_scopes.py)."""
        async with self._database.connection() as conn, conn.transaction():
            # the key's row lock serialises writers, or two replacements could leave their union
            await conn.execute("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", key_id)
            await conn.execute("DELETE FROM api_key_scopes WHERE key_id = $1", key_id)
            await conn.executemany(
                "INSERT INTO api_key_scopes (key_id, scope) VALUES ($1, $2)",
                [(key_id, s) for s in dict.fromkeys(scopes)],
            )

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        if not last_used:
            return
        async with self._database.connection() as conn:
            await conn.execute(
                "UPDATE api_keys AS k SET last_used_at = greatest(coalesce(k.last_used_at, 0), t.at)"
                " FROM unnest($1::text[], $2::float8[]) AS t(id, at) WHERE k.id = t.id",
                list(last_used),
                [to_ts(at) for at in last_used.values()],
            )
