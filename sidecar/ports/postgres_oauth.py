"""The OAuth store on PostgreSQL: the same tables and rules as ``sqlite_oauth``, through asyncpg.

"Used" markers are single conditional ``UPDATE … WHERE used_at IS NULL RETURNING``s, so two
replicas redeeming one code or refresh token at once cannot both win; rotation and revocation
cascades are one transaction each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

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
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.rows import to_ts

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "oauth",
        1,
        """
        CREATE TABLE oauth_clients (
            id TEXT COLLATE "C" PRIMARY KEY,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            secret_digest TEXT,
            secret_last4 TEXT,
            redirect_uris TEXT NOT NULL,
            scopes TEXT NOT NULL,
            org_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
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
            expires_at DOUBLE PRECISION NOT NULL,
            used_at DOUBLE PRECISION
        );
        CREATE TABLE oauth_grants (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            scopes TEXT NOT NULL,
            subject TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        );
        CREATE INDEX oauth_grants_by_client ON oauth_grants (client_id);
        CREATE TABLE oauth_refresh_tokens (
            digest TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            issued_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            used_at DOUBLE PRECISION
        );
        CREATE INDEX oauth_refresh_tokens_by_grant ON oauth_refresh_tokens (grant_id);
        CREATE INDEX oauth_refresh_tokens_by_client ON oauth_refresh_tokens (client_id);
        CREATE TABLE oauth_access_tokens (
            jti TEXT PRIMARY KEY,
            grant_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            issued_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        );
        CREATE INDEX oauth_access_tokens_by_grant ON oauth_access_tokens (grant_id);
        CREATE INDEX oauth_access_tokens_by_client ON oauth_access_tokens (client_id);
        """,
    ),
)

_INSERT_REFRESH = (
    "INSERT INTO oauth_refresh_tokens (digest, grant_id, client_id, issued_at, expires_at, used_at)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)


async def _revoke_where(conn: asyncpg.Connection, column: str, value: str, at: datetime) -> None:
    when = to_ts(at)
    grant_column = "id" if column == "grant_id" else column
    await conn.execute(
        f"UPDATE oauth_grants SET revoked_at = $1 WHERE {grant_column} = $2 AND revoked_at IS NULL",  # noqa: S608
        when,
        value,
    )
    await conn.execute(
        f"UPDATE oauth_access_tokens SET revoked_at = $1 WHERE {column} = $2 AND revoked_at IS NULL",  # noqa: S608
        when,
        value,
    )
    await conn.execute(
        f"UPDATE oauth_refresh_tokens SET used_at = $1 WHERE {column} = $2 AND used_at IS NULL",  # noqa: S608
        when,
        value,
    )


class PostgresOAuthStore:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._database.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> None:
        async with self._database.connection() as conn:
            await conn.execute(sql, *args)

    async def insert_client(self, client: OAuthClient) -> None:
        await self._execute(
            f"INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",  # noqa: S608
            *client_row(client),
        )

    async def get_client(self, client_id: str) -> OAuthClient | None:
        row = await self._fetchrow(f"SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1", client_id)  # noqa: S608
        return None if row is None else client_from_row(row)

    async def list_clients(self, *, org_id: str | None, limit: int, starting_after: str | None) -> Page[OAuthClient]:
        where: list[str] = []
        args: list[Any] = []

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if org_id is not None:
            where.append(f"org_id = {param(org_id)}")
        if starting_after is not None:
            cursor = await self.get_client(starting_after)
            if cursor is None:
                return Page(data=[], has_more=False)
            where.append(f"(created_at, id) < ({param(to_ts(cursor.created_at))}, {param(cursor.id)})")
        sql = f"SELECT {CLIENT_COLUMNS} FROM oauth_clients"  # noqa: S608 - fixed column list
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC"
        sql += f" LIMIT {param(limit + 1)}"
        async with self._database.connection() as conn:
            rows = await conn.fetch(sql, *args)
        clients = [client_from_row(r) for r in rows]
        return Page(data=clients[:limit], has_more=len(clients) > limit)

    async def delete_client(self, client_id: str, at: datetime) -> bool:
        async with self._database.connection() as conn, conn.transaction():
            await _revoke_where(conn, "client_id", client_id, at)
            deleted = await conn.fetchval("DELETE FROM oauth_clients WHERE id = $1 RETURNING id", client_id)
        return deleted is not None

    async def insert_code(self, code: AuthorizationCode) -> None:
        await self._execute(
            "INSERT INTO oauth_codes (digest, client_id, redirect_uri, code_challenge, scopes, subject, grant_id,"
            " expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            *code_row(code),
        )

    async def get_code(self, digest: str) -> AuthorizationCode | None:
        row = await self._fetchrow("SELECT * FROM oauth_codes WHERE digest = $1", digest)
        return None if row is None else code_from_row(row)

    async def mark_code_used(self, digest: str, at: datetime) -> bool:
        row = await self._fetchrow(
            "UPDATE oauth_codes SET used_at = $1 WHERE digest = $2 AND used_at IS NULL RETURNING digest",
            to_ts(at),
            digest,
        )
        return row is not None

    async def insert_grant(self, grant: OAuthGrant) -> None:
        await self._execute(
            "INSERT INTO oauth_grants (id, client_id, scopes, subject, created_at, revoked_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            *grant_row(grant),
        )

    async def get_grant(self, grant_id: str) -> OAuthGrant | None:
        row = await self._fetchrow("SELECT * FROM oauth_grants WHERE id = $1", grant_id)
        return None if row is None else grant_from_row(row)

    async def revoke_grant(self, grant_id: str, at: datetime) -> None:
        async with self._database.connection() as conn, conn.transaction():
            await _revoke_where(conn, "grant_id", grant_id, at)

    async def insert_refresh_token(self, record: RefreshTokenRecord) -> None:
        await self._execute(_INSERT_REFRESH, *refresh_row(record))

    async def get_refresh_token(self, digest: str) -> RefreshTokenRecord | None:
        row = await self._fetchrow("SELECT * FROM oauth_refresh_tokens WHERE digest = $1", digest)
        return None if row is None else refresh_from_row(row)

    async def rotate_refresh_token(self, old_digest: str, at: datetime, new: RefreshTokenRecord) -> bool:
        async with self._database.connection() as conn, conn.transaction():
            won = await conn.fetchval(
                "UPDATE oauth_refresh_tokens SET used_at = $1 WHERE digest = $2 AND used_at IS NULL RETURNING digest",
                to_ts(at),
                old_digest,
            )
            if won is None:
                return False
            await conn.execute(_INSERT_REFRESH, *refresh_row(new))
        return True

    async def insert_access_token(self, record: AccessTokenRecord) -> None:
        await self._execute(
            "INSERT INTO oauth_access_tokens (jti, grant_id, client_id, issued_at, expires_at, revoked_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            record.jti,
            record.grant_id,
            record.client_id,
            to_ts(record.issued_at),
            to_ts(record.expires_at),
            to_ts(record.revoked_at),
        )

    async def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        row = await self._fetchrow("SELECT * FROM oauth_access_tokens WHERE jti = $1", jti)
        return None if row is None else access_from_row(row)

    async def revoke_access_token(self, jti: str, at: datetime) -> None:
        await self._execute(
            "UPDATE oauth_access_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL", to_ts(at), jti
        )
