"""The OAuth store on the shared SQLite database: clients, codes, grants, refresh and access tokens.

Codes, client secrets and refresh tokens are stored as SHA-256 digests (they carry 256 bits of
CSPRNG entropy, so an unkeyed digest cannot be reversed). "Used" markers are set by one
conditional ``UPDATE … WHERE used_at IS NULL`` whose row count says which caller won, so two
concurrent redemptions of one code or refresh token can never both succeed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sidecar.errors import Unavailable
from sidecar.models import (
    AccessTokenRecord,
    AuthorizationCode,
    ClientType,
    Environment,
    OAuthClient,
    OAuthGrant,
    OAuthSubject,
    Page,
    RefreshTokenRecord,
)
from sidecar.ports.rows import Row, from_ts, to_ts
from sidecar.ports.sqlite import Migration, SqliteDatabase

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

_CLIENT_COLUMNS = "id, name, type, secret_digest, secret_last4, redirect_uris, scopes, org_id, created_at"


def _ts(value: Any) -> datetime:
    parsed = from_ts(value)
    assert parsed is not None
    return parsed


def _subject_json(subject: OAuthSubject) -> str:
    return json.dumps(
        {
            "subject": subject.subject,
            "org_id": subject.org_id,
            "environment": subject.environment.value,
            "team_id": subject.team_id,
            "user_id": subject.user_id,
        }
    )


def _subject(text: str) -> OAuthSubject:
    data = json.loads(text)
    return OAuthSubject(
        subject=data["subject"],
        org_id=data["org_id"],
        environment=Environment(data["environment"]),
        team_id=data["team_id"],
        user_id=data["user_id"],
    )


def _client(row: Row) -> OAuthClient:
    return OAuthClient(
        id=row["id"],
        name=row["name"],
        type=ClientType(row["type"]),
        secret_digest=row["secret_digest"],
        secret_last4=row["secret_last4"],
        redirect_uris=tuple(json.loads(row["redirect_uris"])),
        scopes=tuple(json.loads(row["scopes"])),
        org_id=row["org_id"],
        created_at=_ts(row["created_at"]),
    )


def _code(row: Row) -> AuthorizationCode:
    return AuthorizationCode(
        digest=row["digest"],
        client_id=row["client_id"],
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        scopes=tuple(json.loads(row["scopes"])),
        subject=_subject(row["subject"]),
        grant_id=row["grant_id"],
        expires_at=_ts(row["expires_at"]),
        used_at=from_ts(row["used_at"]),
    )


def _grant(row: Row) -> OAuthGrant:
    return OAuthGrant(
        id=row["id"],
        client_id=row["client_id"],
        scopes=tuple(json.loads(row["scopes"])),
        subject=_subject(row["subject"]),
        created_at=_ts(row["created_at"]),
        revoked_at=from_ts(row["revoked_at"]),
    )


def _refresh(row: Row) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        digest=row["digest"],
        grant_id=row["grant_id"],
        client_id=row["client_id"],
        issued_at=_ts(row["issued_at"]),
        expires_at=_ts(row["expires_at"]),
        used_at=from_ts(row["used_at"]),
    )


def _access(row: Row) -> AccessTokenRecord:
    return AccessTokenRecord(
        jti=row["jti"],
        grant_id=row["grant_id"],
        client_id=row["client_id"],
        issued_at=_ts(row["issued_at"]),
        expires_at=_ts(row["expires_at"]),
        revoked_at=from_ts(row["revoked_at"]),
    )


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (sqlite3.OperationalError, ValueError) as exc:
        raise Unavailable("the OAuth store is unavailable", reason="store_unavailable") from exc


class SqliteOAuthStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.connection

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Row | None:
        with _unavailable():
            async with self._db.execute(sql, params) as cur:
                row: Row | None = await cur.fetchone()
        return row

    async def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with _unavailable():
            async with self._db.execute(sql, params) as cur:
                return cur.rowcount

    # --- clients ------------------------------------------------------------------------------

    async def insert_client(self, client: OAuthClient) -> None:
        await self._write(
            f"INSERT INTO oauth_clients ({_CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                client.id,
                client.name,
                client.type.value,
                client.secret_digest,
                client.secret_last4,
                json.dumps(list(client.redirect_uris)),
                json.dumps(list(client.scopes)),
                client.org_id,
                to_ts(client.created_at),
            ),
        )

    async def get_client(self, client_id: str) -> OAuthClient | None:
        row = await self._one(f"SELECT {_CLIENT_COLUMNS} FROM oauth_clients WHERE id = ?", (client_id,))  # noqa: S608
        return None if row is None else _client(row)

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
        sql = f"SELECT {_CLIENT_COLUMNS} FROM oauth_clients"  # noqa: S608 - fixed column list
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)
        with _unavailable():
            async with self._db.execute(sql, params) as cur:
                rows = await cur.fetchall()
        clients = [_client(r) for r in rows]
        return Page(data=clients[:limit], has_more=len(clients) > limit)

    async def delete_client(self, client_id: str, at: datetime) -> bool:
        await self._revoke_where("client_id", client_id, at)
        return await self._write("DELETE FROM oauth_clients WHERE id = ?", (client_id,)) > 0

    async def _revoke_where(self, column: str, value: str, at: datetime) -> None:
        """Revoke the grants, access tokens and refresh tokens whose ``column`` is ``value``."""
        when = to_ts(at)
        grant_column = "id" if column == "grant_id" else column
        # the grant first: the token endpoint checks it before honouring any refresh token
        await self._write(
            f"UPDATE oauth_grants SET revoked_at = ? WHERE {grant_column} = ? AND revoked_at IS NULL",  # noqa: S608
            (when, value),
        )
        await self._write(
            f"UPDATE oauth_access_tokens SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL",  # noqa: S608
            (when, value),
        )
        await self._write(
            f"UPDATE oauth_refresh_tokens SET used_at = ? WHERE {column} = ? AND used_at IS NULL",  # noqa: S608
            (when, value),
        )

    # --- codes --------------------------------------------------------------------------------

    async def insert_code(self, code: AuthorizationCode) -> None:
        await self._write(
            "INSERT INTO oauth_codes (digest, client_id, redirect_uri, code_challenge, scopes, subject, grant_id,"
            " expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                code.digest,
                code.client_id,
                code.redirect_uri,
                code.code_challenge,
                json.dumps(list(code.scopes)),
                _subject_json(code.subject),
                code.grant_id,
                to_ts(code.expires_at),
                to_ts(code.used_at),
            ),
        )

    async def get_code(self, digest: str) -> AuthorizationCode | None:
        row = await self._one("SELECT * FROM oauth_codes WHERE digest = ?", (digest,))
        return None if row is None else _code(row)

    async def mark_code_used(self, digest: str, at: datetime) -> bool:
        changed = await self._write(
            "UPDATE oauth_codes SET used_at = ? WHERE digest = ? AND used_at IS NULL", (to_ts(at), digest)
        )
        return changed == 1

    # --- grants -------------------------------------------------------------------------------

    async def insert_grant(self, grant: OAuthGrant) -> None:
        await self._write(
            "INSERT INTO oauth_grants (id, client_id, scopes, subject, created_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                grant.id,
                grant.client_id,
                json.dumps(list(grant.scopes)),
                _subject_json(grant.subject),
                to_ts(grant.created_at),
                to_ts(grant.revoked_at),
            ),
        )

    async def get_grant(self, grant_id: str) -> OAuthGrant | None:
        row = await self._one("SELECT * FROM oauth_grants WHERE id = ?", (grant_id,))
        return None if row is None else _grant(row)

    async def revoke_grant(self, grant_id: str, at: datetime) -> None:
        await self._revoke_where("grant_id", grant_id, at)

    # --- refresh tokens -----------------------------------------------------------------------

    async def insert_refresh_token(self, record: RefreshTokenRecord) -> None:
        await self._write(
            "INSERT INTO oauth_refresh_tokens (digest, grant_id, client_id, issued_at, expires_at, used_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.digest,
                record.grant_id,
                record.client_id,
                to_ts(record.issued_at),
                to_ts(record.expires_at),
                to_ts(record.used_at),
            ),
        )

    async def get_refresh_token(self, digest: str) -> RefreshTokenRecord | None:
        row = await self._one("SELECT * FROM oauth_refresh_tokens WHERE digest = ?", (digest,))
        return None if row is None else _refresh(row)

    async def rotate_refresh_token(self, old_digest: str, at: datetime, new: RefreshTokenRecord) -> bool:
        changed = await self._write(
            "UPDATE oauth_refresh_tokens SET used_at = ? WHERE digest = ? AND used_at IS NULL", (to_ts(at), old_digest)
        )
        if changed != 1:
            return False
        await self.insert_refresh_token(new)
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
        return None if row is None else _access(row)

    async def revoke_access_token(self, jti: str, at: datetime) -> None:
        await self._write(
            "UPDATE oauth_access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL", (to_ts(at), jti)
        )
