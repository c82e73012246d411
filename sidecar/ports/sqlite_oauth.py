"""The OAuth store on the shared SQLite database: clients, codes, grants, refresh and access tokens.

Codes, client secrets and refresh tokens are stored as SHA-256 digests (they carry 256 bits of
CSPRNG entropy, so an unkeyed digest cannot be reversed). "Used" markers are set by one
conditional ``UPDATE … WHERE used_at IS NULL`` whose row count says which caller won, so two
concurrent redemptions of one code or refresh token can never both succeed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import aiosqlite

from sidecar.errors import Unavailable
from sidecar.models import (
    AccessTokenRecord,
    AuthorizationCode,
    OAuthClient,
    OAuthGrant,
    Page,
    RefreshTokenRecord,
)
from sidecar.ports.migrations import Migration
from sidecar.ports.oauth_rows import (
    CLIENT_COLUMNS,
    access_from_row,
    client_from_row,
    client_row,
    code_from_row,
    code_row,
    grant_from_row,
    grant_row,
    refresh_from_row,
    refresh_row,
)
from sidecar.ports.rows import Row, to_ts
from sidecar.ports.sqlite import SqliteDatabase

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "oauth",
        1,
        """
        CREATE TABLE oauth_clients (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            secret_digest TEXT,
            secret_last4 TEXT,
            redirect_uris TEXT NOT NULL,
            scopes TEXT NOT NULL,
            org_id TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX oauth_clients_by_org_created ON oauth_clients (org_id, created_at DESC, id DESC);
        CREATE TABLE oauth_codes (
            digest TEXT PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
            redirect_uri TEXT NOT NULL,
            code_challenge TEXT NOT NULL,
            scopes TEXT NOT NULL,
            subject TEXT NOT NULL,
            grant_id TEXT NOT NULL,
            expires_at REAL NOT NULL,
            used_at REAL
        );
        CREATE TABLE oauth_grants (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            scopes TEXT NOT NULL,
            subject TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX oauth_grants_by_client ON oauth_grants (client_id);
        CREATE TABLE oauth_refresh_tokens (
            digest TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            issued_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_at REAL
        );
        CREATE INDEX oauth_refresh_tokens_by_grant ON oauth_refresh_tokens (grant_id);
        CREATE TABLE oauth_access_tokens (
            jti TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            issued_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX oauth_access_tokens_by_grant ON oauth_access_tokens (grant_id);
        """,
    ),
)

_INSERT_REFRESH = (
    "INSERT INTO oauth_refresh_tokens (digest, grant_id, client_id, issued_at, expires_at, used_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


async def _revoke_where(db: aiosqlite.Connection, column: str, value: str, at: datetime) -> None:
    """Revoke the grants, access tokens and refresh tokens whose ``column`` is ``value``."""
    when = to_ts(at)
    grant_column = "id" if column == "grant_id" else column
    await db.execute(
        f"UPDATE oauth_grants SET revoked_at = ? WHERE {grant_column} = ? AND revoked_at IS NULL",  # noqa: S608
        (when, value),
    )
    await db.execute(
        f"UPDATE oauth_access_tokens SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL",  # noqa: S608
        (when, value),
    )
    await db.execute(
        f"UPDATE oauth_refresh_tokens SET used_at = ? WHERE {column} = ? AND used_at IS NULL",  # noqa: S608
        (when, value),
    )


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (sqlite3.OperationalError, ValueError) as exc:
        raise Unavailable("the OAuth store is unavailable", reason="store_unavailable") from exc


class SqliteOAuthStore:
    """Writes go through the database's write lock (all stores share one connection); multi-step
    changes (rotation, revocation cascades) are one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database
        self._db = database.connection

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Row | None:
        with _unavailable():
            async with self._db.execute(sql, params) as cur:
                row: Row | None = await cur.fetchone()
        return row

    async def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with _unavailable():
            async with self._database.write() as db, db.execute(sql, params) as cur:
                return cur.rowcount

    # --- clients ------------------------------------------------------------------------------

    async def insert_client(self, client: OAuthClient) -> None:
        await self._write(
            f"INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            client_row(client),
        )

    async def get_client(self, client_id: str) -> OAuthClient | None:
        row = await self._one(f"SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = ?", (client_id,))  # noqa: S608
        return None if row is None else client_from_row(row)

    async def list_clients(self, *, org_id: str | None, limit: int, starting_after: str | None) -> Page[OAuthClient]:
        where: list[str] = []
        params: list[Any] = []
        if org_id is not None:
            where.append("org_id = ?")
            params.append(org_id)
        if starting_after is not None:
            cursor = await self.get_client(starting_after)
            if cursor is None:
                return Page(data=[], has_more=False)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [to_ts(cursor.created_at), to_ts(cursor.created_at), cursor.id]
        sql = f"SELECT {CLIENT_COLUMNS} FROM oauth_clients"  # noqa: S608 - fixed column list
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)
        with _unavailable():
            async with self._db.execute(sql, params) as cur:
                rows = await cur.fetchall()
        clients = [client_from_row(r) for r in rows]
        return Page(data=clients[:limit], has_more=len(clients) > limit)

    async def delete_client(self, client_id: str, at: datetime) -> bool:
        with _unavailable():
            async with self._database.transaction() as db:
                await _revoke_where(db, "client_id", client_id, at)
                async with db.execute("DELETE FROM oauth_clients WHERE id = ?", (client_id,)) as cur:
                    return cur.rowcount > 0

    # --- codes --------------------------------------------------------------------------------

    async def insert_code(self, code: AuthorizationCode) -> None:
        await self._write(
            "INSERT INTO oauth_codes (digest, client_id, redirect_uri, code_challenge, scopes, subject, grant_id,"
            " expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            code_row(code),
        )

    async def get_code(self, digest: str) -> AuthorizationCode | None:
        row = await self._one("SELECT * FROM oauth_codes WHERE digest = ?", (digest,))
        return None if row is None else code_from_row(row)

    async def mark_code_used(self, digest: str, at: datetime) -> bool:
        changed = await self._write(
            "UPDATE oauth_codes SET used_at = ? WHERE digest = ? AND used_at IS NULL", (to_ts(at), digest)
        )
        return changed == 1

    # --- grants -------------------------------------------------------------------------------

    async def insert_grant(self, grant: OAuthGrant) -> None:
        await self._write(
            "INSERT INTO oauth_grants (id, client_id, scopes, subject, created_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            grant_row(grant),
        )

    async def get_grant(self, grant_id: str) -> OAuthGrant | None:
        row = await self._one("SELECT * FROM oauth_grants WHERE id = ?", (grant_id,))
        return None if row is None else grant_from_row(row)

    async def revoke_grant(self, grant_id: str, at: datetime) -> None:
        with _unavailable():
            async with self._database.transaction() as db:
                await _revoke_where(db, "grant_id", grant_id, at)

    # --- refresh tokens -----------------------------------------------------------------------

    async def insert_refresh_token(self, record: RefreshTokenRecord) -> None:
        await self._write(_INSERT_REFRESH, refresh_row(record))

    async def get_refresh_token(self, digest: str) -> RefreshTokenRecord | None:
        row = await self._one("SELECT * FROM oauth_refresh_tokens WHERE digest = ?", (digest,))
        return None if row is None else refresh_from_row(row)

    async def rotate_refresh_token(self, old_digest: str, at: datetime, new: RefreshTokenRecord) -> bool:
        with _unavailable():
            async with self._database.transaction() as db:
                async with db.execute(
                    "UPDATE oauth_refresh_tokens SET used_at = ? WHERE digest = ? AND used_at IS NULL",
                    (to_ts(at), old_digest),
                ) as cur:
                    if cur.rowcount != 1:
                        return False
                await db.execute(_INSERT_REFRESH, refresh_row(new))
                return True

    # --- access tokens ------------------------------------------------------------------------

    async def insert_access_token(self, record: AccessTokenRecord) -> None:
        await self._write(
            "INSERT INTO oauth_access_tokens (jti, grant_id, client_id, issued_at, expires_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.jti,
                record.grant_id,
                record.client_id,
                to_ts(record.issued_at),
                to_ts(record.expires_at),
                to_ts(record.revoked_at),
            ),
        )

    async def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        row = await self._one("SELECT * FROM oauth_access_tokens WHERE jti = ?", (jti,))
        return None if row is None else access_from_row(row)

    async def revoke_access_token(self, jti: str, at: datetime) -> None:
        await self._write(
            "UPDATE oauth_access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL", (to_ts(at), jti)
        )
