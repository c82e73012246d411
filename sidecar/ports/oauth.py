"""The OAuth authorization server's storage port: clients, codes, grants and their tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sidecar.models import (
    AccessTokenRecord,
    AuthorizationCode,
    OAuthClient,
    OAuthGrant,
    Page,
    RefreshTokenRecord,
)


class OAuthStore(Protocol):
    """Durable OAuth state. Every "mark used" is atomic: it reports whether THIS call marked it."""

    async def insert_client(self, client: OAuthClient) -> None: ...

    async def get_client(self, client_id: str) -> OAuthClient | None: ...

    async def list_clients(self, *, org_id: str | None, limit: int, starting_after: str | None) -> Page[OAuthClient]:
        """Newest first; ``starting_after`` is the id of the last client of the previous page."""
        ...

    async def delete_client(self, client_id: str, at: datetime) -> bool:
        """Delete the client, its codes, and revoke its grants and their tokens; ``False`` if absent."""
        ...

    async def insert_code(self, code: AuthorizationCode) -> None: ...

    async def get_code(self, digest: str) -> AuthorizationCode | None: ...

    async def mark_code_used(self, digest: str, at: datetime) -> bool:
        """Set ``used_at`` if unset; ``True`` only for the one call that set it."""
        ...

    async def insert_grant(self, grant: OAuthGrant) -> None:
        """Insert, or do nothing if a grant with this id exists (racing exchanges of one code)."""
        ...

    async def get_grant(self, grant_id: str) -> OAuthGrant | None: ...

    async def revoke_grant(self, grant_id: str, at: datetime) -> None:
        """Revoke the grant, every refresh token of it and every access token issued from it."""
        ...

    async def insert_refresh_token(self, record: RefreshTokenRecord) -> None: ...

    async def get_refresh_token(self, digest: str) -> RefreshTokenRecord | None: ...

    async def rotate_refresh_token(self, old_digest: str, at: datetime, new: RefreshTokenRecord) -> bool:
        """Mark ``old_digest`` used and insert ``new``, atomically; ``False`` (and no insert) if
        the old one was already used."""
        ...

    async def insert_access_token(self, record: AccessTokenRecord) -> None: ...

    async def get_access_token(self, jti: str) -> AccessTokenRecord | None: ...

    async def revoke_access_token(self, jti: str, at: datetime) -> None: ...
