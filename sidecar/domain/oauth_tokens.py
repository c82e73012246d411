"""The token endpoint (RFC 6749 §4.1.3, §4.4, §6; RFC 7636 §4.6), revocation (RFC 7009),
introspection (RFC 7662), and the check that keeps revoked access tokens out of the API.

Access tokens are minted by an ``AccessTokenMinter`` (the session-JWT service in production),
acting as role ``restricted`` with the granted scopes as permissions, so the grant, not the
merchant's own role, bounds what a partner can do. Each one's ``jti`` is recorded against its
grant, which is what makes "reuse of a code revokes the tokens issued from it" possible for
otherwise stateless JWTs. Refresh tokens are opaque, stored as digests, rotated on every use;
presenting a used one revokes its whole grant (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sidecar.domain import pkce
from sidecar.domain import scopes as scope_rules
from sidecar.domain.authn import TokenVerifier
from sidecar.domain.oauth_authorize import parse_scope
from sidecar.domain.oauth_clients import secret_digest
from sidecar.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidScope,
    InvalidToken,
    OAuthInvalidRequest,
    SidecarError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from sidecar.models import (
    AccessTokenRecord,
    ClientType,
    CredentialType,
    Environment,
    OAuthClient,
    OAuthGrant,
    OAuthSubject,
    Principal,
    RefreshTokenRecord,
)
from sidecar.ports import Clock
from sidecar.ports.oauth import OAuthStore

OAUTH_ROLE = "restricted"
REFRESH_PREFIX = "ort_"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
Grant = Callable[[OAuthClient, Mapping[str, str]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    jti: str
    expires_at: datetime


class AccessTokenMinter(Protocol):
    async def mint(self, principal: Principal, *, ttl_s: int) -> MintedToken:
        """A signed access token for ``principal`` (its ``extra`` holds ``client_id``)."""
        ...


class AccessTokenIssuer(AccessTokenMinter, TokenVerifier, Protocol):
    """Mints access tokens and verifies them again (the session-JWT service)."""


def oauth_principal(client_id: str, subject: OAuthSubject, scopes: tuple[str, ...]) -> Principal:
    """What an OAuth access token says: the grant's subject, acting as ``restricted`` with the grant's scopes."""
    return Principal(
        credential_type=CredentialType.SESSION_JWT,
        subject=subject.subject,
        org_id=subject.org_id,
        role=OAUTH_ROLE,
        allowed_roles=(OAUTH_ROLE,),
        scopes=scopes,
        environment=subject.environment,
        team_id=subject.team_id,
        user_id=subject.user_id,
        extra={"client_id": client_id},
    )


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise OAuthInvalidRequest(f"{name} is required", reason=f"{name}_missing")
    return value


_BAD_CODE = "the authorization code is invalid, expired or already used"
_BAD_REFRESH = "the refresh token is invalid, expired or revoked"


class TokenEndpoint:
    def __init__(
        self,
        store: OAuthStore,
        minter: AccessTokenMinter,
        verifier: TokenVerifier,
        clock: Clock,
        *,
        access_ttl_s: int,
        refresh_ttl_s: int,
        extra_grants: Mapping[str, Grant] | None = None,
    ) -> None:
        self._store = store
        self._minter = minter
        self._verifier = verifier
        self._clock = clock
        self._access_ttl_s = access_ttl_s
        self._refresh_ttl = timedelta(seconds=refresh_ttl_s)
        self._grants: dict[str, Grant] = {
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
            "client_credentials": self._client_credentials,
            **(extra_grants or {}),
        }

    @property
    def grant_types(self) -> tuple[str, ...]:
        """Every ``grant_type`` this endpoint accepts (RFC 8414 ``grant_types_supported``)."""
        return tuple(self._grants)

    async def token(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 6749 §5.1: the token response for an authenticated client's grant."""
        grant_type = _required(form, "grant_type")
        grant = self._grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType("this grant_type is not supported", reason="grant_type_unsupported")
        return await grant(client, form)

    # --- grants --------------------------------------------------------------------------------

    async def _authorization_code(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6); a reused code revokes what it issued."""
        raw = _required(form, "code")
        redirect_uri = _required(form, "redirect_uri")
        verifier = _required(form, "code_verifier")
        code = await self._store.get_code(secret_digest(raw))
        if code is None or code.client_id != client.id:
            raise InvalidGrant(_BAD_CODE, reason="code_unknown")
        now = self._clock.now()
        if code.used_at is not None:
            await self._store.revoke_grant(code.grant_id, now)
            raise InvalidGrant(_BAD_CODE, reason="code_reused")
        if code.expires_at <= now:
            raise InvalidGrant(_BAD_CODE, reason="code_expired")
        if redirect_uri != code.redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request", reason="redirect_uri_mismatch")
        if not pkce.verifier_matches(verifier, code.code_challenge):
            raise InvalidGrant("code_verifier does not match the code_challenge", reason="pkce_mismatch")
        # the grant exists before the code is marked used, so whoever sees the code as used can
        # revoke it, even while this exchange is still minting
        grant = OAuthGrant(code.grant_id, client.id, code.scopes, code.subject, created_at=now)
        await self._store.insert_grant(grant)
        if not await self._store.mark_code_used(code.digest, now):
            await self._store.revoke_grant(code.grant_id, now)
            raise InvalidGrant(_BAD_CODE, reason="code_reused")
        response = await self._issue_access(client, grant, grant.scopes)
        response["refresh_token"] = await self._issue_refresh(grant)
        return response

    async def _refresh_token(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 6749 §6 with rotation; RFC 9700 §4.14.2 reuse detection revokes the whole grant."""
        raw = _required(form, "refresh_token")
        record = await self._store.get_refresh_token(secret_digest(raw))
        if record is None or record.client_id != client.id:
            raise InvalidGrant(_BAD_REFRESH, reason="refresh_unknown")
        grant = await self._store.get_grant(record.grant_id)
        now = self._clock.now()
        if grant is None or grant.revoked_at is not None:
            raise InvalidGrant(_BAD_REFRESH, reason="grant_revoked")
        if record.used_at is not None:
            await self._store.revoke_grant(grant.id, now)
            raise InvalidGrant(_BAD_REFRESH, reason="refresh_reused")
        if record.expires_at <= now:
            raise InvalidGrant(_BAD_REFRESH, reason="refresh_expired")
        scopes = parse_scope(form.get("scope")) or grant.scopes
        if scope_rules.within(grant.scopes, scopes):
            raise InvalidScope("a refresh may only narrow the granted scope", reason="scope_too_wide")
        new_token, new_record = self._new_refresh(grant)
        if not await self._store.rotate_refresh_token(record.digest, now, new_record):
            await self._store.revoke_grant(grant.id, now)
            raise InvalidGrant(_BAD_REFRESH, reason="refresh_reused")
        response = await self._issue_access(client, grant, scopes)
        response["refresh_token"] = new_token
        return response

    async def _client_credentials(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 6749 §4.4: a confidential client acting for itself, in its own org, within its scopes."""
        if client.type is not ClientType.CONFIDENTIAL:
            raise UnauthorizedClient("only confidential clients may use client_credentials", reason="public_client")
        scopes = parse_scope(form.get("scope")) or client.scopes
        if scope_rules.within(client.scopes, scopes):
            raise InvalidScope("the requested scope is wider than this client may ask for", reason="scope_too_wide")
        subject = OAuthSubject(subject=client.id, org_id=client.org_id, environment=Environment.LIVE)
        grant = OAuthGrant("og_" + secrets.token_urlsafe(18), client.id, scopes, subject, created_at=self._clock.now())
        await self._store.insert_grant(grant)
        return await self._issue_access(client, grant, scopes)

    # --- issuing ------------------------------------------------------------------------------

    async def _issue_access(self, client: OAuthClient, grant: OAuthGrant, scopes: tuple[str, ...]) -> dict[str, Any]:
        principal = oauth_principal(client.id, grant.subject, scopes)
        minted = await self._minter.mint(principal, ttl_s=self._access_ttl_s)
        now = self._clock.now()
        record = AccessTokenRecord(minted.jti, grant.id, client.id, issued_at=now, expires_at=minted.expires_at)
        await self._store.insert_access_token(record)
        # a reuse detected while we minted revoked the grant; this token must not escape it
        current = await self._store.get_grant(grant.id)
        if current is None or current.revoked_at is not None:
            await self._store.revoke_access_token(minted.jti, now)
            raise InvalidGrant("the grant was revoked", reason="grant_revoked")
        return {
            "access_token": minted.token,
            "token_type": "Bearer",
            "expires_in": max(0, round((minted.expires_at - now).total_seconds())),
            "scope": " ".join(scopes),
        }

    def _new_refresh(self, grant: OAuthGrant) -> tuple[str, RefreshTokenRecord]:
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        now = self._clock.now()
        record = RefreshTokenRecord(secret_digest(token), grant.id, grant.client_id, now, now + self._refresh_ttl)
        return token, record

    async def _issue_refresh(self, grant: OAuthGrant) -> str:
        token, record = self._new_refresh(grant)
        await self._store.insert_refresh_token(record)
        return token

    # --- revocation and introspection ---------------------------------------------------------

    async def revoke(self, client: OAuthClient, form: Mapping[str, str]) -> None:
        """RFC 7009 §2.1. A refresh token takes its grant (and the grant's access tokens) with it.

        Unknown, expired and other clients' tokens get the same empty 200 (§2.2), so the answer
        never tells a client whether a token it does not own exists.
        """
        token = _required(form, "token")
        now = self._clock.now()
        refresh = await self._store.get_refresh_token(secret_digest(token))
        if refresh is not None:
            if refresh.client_id == client.id:
                await self._store.revoke_grant(refresh.grant_id, now)
            return
        access = await self._access_record(token)
        if access is not None and access.client_id == client.id:
            await self._store.revoke_access_token(access.jti, now)

    async def introspect(self, client: OAuthClient, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 7662 §2.2. A client learns only about its own tokens: anything else is inactive."""
        if client.type is not ClientType.CONFIDENTIAL:
            raise InvalidClient("introspection requires an authenticated confidential client", reason="public_client")
        token = _required(form, "token")
        inactive: dict[str, Any] = {"active": False}
        now = self._clock.now()
        refresh = await self._store.get_refresh_token(secret_digest(token))
        if refresh is not None:
            grant = await self._live_grant(refresh.grant_id, client)
            if grant is None or refresh.used_at is not None or refresh.expires_at <= now:
                return inactive
            return _claims("refresh_token", client, grant, refresh.issued_at, refresh.expires_at, grant.scopes)
        try:
            principal = await self._verifier.verify(token)
        except SidecarError:
            return inactive
        access = await self._store.get_access_token(principal.token_id or "")
        if access is None or access.revoked_at is not None:
            return inactive
        grant = await self._live_grant(access.grant_id, client)
        if grant is None:
            return inactive
        body = _claims("access_token", client, grant, access.issued_at, access.expires_at, principal.scopes)
        body["jti"] = access.jti
        return body

    async def _live_grant(self, grant_id: str, client: OAuthClient) -> OAuthGrant | None:
        grant = await self._store.get_grant(grant_id)
        if grant is None or grant.revoked_at is not None or grant.client_id != client.id:
            return None
        return grant

    async def _access_record(self, token: str) -> AccessTokenRecord | None:
        try:
            principal = await self._verifier.verify(token)
        except SidecarError:
            return None
        return await self._store.get_access_token(principal.token_id) if principal.token_id else None


def _claims(
    token_type: str,
    client: OAuthClient,
    grant: OAuthGrant,
    issued_at: datetime,
    expires_at: datetime,
    scopes: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "active": True,
        "token_type": token_type,
        "client_id": client.id,
        "scope": " ".join(scopes),
        "sub": grant.subject.subject,
        "org_id": grant.subject.org_id,
        "user_id": grant.subject.user_id,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
    }


class RevocationCheckingVerifier:
    """Wraps the session-JWT verifier so a revoked OAuth access token stops working at once.

    Only tokens without a ``key_id`` can be ours (a session JWT from ``/v1/auth/token`` always
    names the API key it came from), so ordinary session JWTs cost no store lookup. Hasura in JWT
    mode checks signatures itself and so honours revocation only at expiry.
    """

    def __init__(self, inner: TokenVerifier, store: OAuthStore) -> None:
        self._inner = inner
        self._store = store

    async def verify(self, token: str) -> Principal:
        principal = await self._inner.verify(token)
        if principal.key_id is None and principal.token_id is not None:
            record = await self._store.get_access_token(principal.token_id)
            if record is not None and record.revoked_at is not None:
                raise InvalidToken("the token has been revoked", reason="token_revoked")
        return principal
