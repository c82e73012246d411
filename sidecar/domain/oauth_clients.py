"""OAuth clients: registration (secret shown once, stored as a digest), listing, deletion, and
client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from sidecar.domain import scopes as scope_rules
from sidecar.domain.audit import Action, Actor, AuditLog
from sidecar.domain.keyformat import BASE62
from sidecar.domain.rbac import Policy
from sidecar.errors import Forbidden, InvalidClient, InvalidRequest, NotFound
from sidecar.models import ClientType, OAuthClient, Page, Principal
from sidecar.ports import Clock
from sidecar.ports.oauth import OAuthStore

SYSTEM_ORGS_SCOPE = "system:orgs"
MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000
MAX_NAME_LENGTH = 100
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# RFC 8252 §7.1: a native app's private-use scheme is a reversed domain name, e.g. com.example.app
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$")
_FORBIDDEN_RESOURCES = frozenset({scope_rules.SYSTEM_RESOURCE, "*"})

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


def _random(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewClient:
    name: str
    type: ClientType
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    org_id: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedClient:
    """A newly registered client: the only moment its secret exists outside the partner's hands."""

    client: OAuthClient
    secret: str | None


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """The client credentials a request presented, and how (parsed at the HTTP edge)."""

    client_id: str | None
    secret: str | None
    method: AuthMethod


def check_redirect_uri(uri: str, client_type: ClientType) -> None:
    """RFC 9700 §2.1 / RFC 8252: absolute, no fragment; https, loopback http, or (public
    clients) a private-use reverse-domain scheme. Matching at authorize time is exact."""
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise InvalidRequest("a redirect URI is too long", reason="bad_redirect_uri")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise InvalidRequest(f"not a valid redirect URI: {uri}", reason="bad_redirect_uri") from None
    if parts.fragment or "#" in uri:
        raise InvalidRequest(f"a redirect URI must not have a fragment: {uri}", reason="bad_redirect_uri")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(f"a redirect URI must not carry credentials: {uri}", reason="bad_redirect_uri")
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host in _LOOPBACK_HOSTS:
        return
    if client_type is ClientType.PUBLIC and _PRIVATE_SCHEME.match(parts.scheme) and not parts.netloc:
        return
    raise InvalidRequest(
        f"redirect URI {uri} must be https, http on a loopback address, or (public clients) "
        "a private-use scheme such as com.example.app:/callback",
        reason="bad_redirect_uri",
    )


class OAuthClientService:
    def __init__(self, store: OAuthStore, clock: Clock, policy: Policy, *, default_org_id: str) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._default_org = default_org_id

    async def create(self, spec: NewClient, *, grantor: Principal | None) -> IssuedClient:
        """Register a client. ``grantor`` is the calling credential; ``None`` is the local operator."""
        org_id = spec.org_id or (grantor.org_id if grantor and grantor.org_id else self._default_org)
        scopes = self._check_spec(spec)
        if grantor is not None:
            _check_org(grantor, org_id)
            self._policy.check_can_grant(grantor, grantor.role, scopes)
        secret = "ocs_" + _random(43) if spec.type is ClientType.CONFIDENTIAL else None
        client = OAuthClient(
            id="oc_" + _random(24),
            name=spec.name,
            type=spec.type,
            secret_digest=secret_digest(secret) if secret else None,
            secret_last4=secret[-4:] if secret else None,
            redirect_uris=tuple(dict.fromkeys(spec.redirect_uris)),
            scopes=scopes,
            org_id=org_id,
            created_at=self._clock.now(),
        )
        await self._store.insert_client(client)
        return IssuedClient(client=client, secret=secret)

    def _check_spec(self, spec: NewClient) -> tuple[str, ...]:
        name = spec.name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise InvalidRequest(f"name must be 1 to {MAX_NAME_LENGTH} characters", reason="bad_name")
        if not 1 <= len(spec.redirect_uris) <= MAX_REDIRECT_URIS:
            raise InvalidRequest(f"give 1 to {MAX_REDIRECT_URIS} redirect URIs", reason="bad_redirect_uri")
        for uri in spec.redirect_uris:
            check_redirect_uri(uri, spec.type)
        scopes = tuple(dict.fromkeys(spec.scopes))
        if not scopes:
            raise InvalidRequest("an OAuth client needs at least one scope", reason="no_scopes")
        self._policy.check_scopes_known(scopes)
        barred = [s for s in scopes if not _delegable(s)]
        if barred:
            raise InvalidRequest(
                f"OAuth clients may hold resource scopes only, not {', '.join(barred)}", reason="scope_not_delegable"
            )
        return scopes

    async def get(self, client_id: str, *, viewer: Principal | None) -> OAuthClient:
        client = await self._store.get_client(client_id)
        if client is None or not _may_see(viewer, client):
            raise NotFound(f"no OAuth client with id {client_id}", reason="oauth_client_not_found")
        return client

    async def list(self, *, viewer: Principal | None, limit: int, starting_after: str | None) -> Page[OAuthClient]:
        org_id = None if viewer is None or scope_rules.allows(viewer.scopes, SYSTEM_ORGS_SCOPE) else viewer.org_id
        return await self._store.list_clients(org_id=org_id, limit=limit, starting_after=starting_after)

    async def delete(self, client_id: str, *, viewer: Principal | None) -> OAuthClient:
        """Delete the client; its codes die with it and every grant and token it holds is revoked."""
        client = await self.get(client_id, viewer=viewer)
        if not await self._store.delete_client(client.id, self._clock.now()):
            raise NotFound(f"no OAuth client with id {client_id}", reason="oauth_client_not_found")
        return client

    async def authenticate(self, auth: ClientAuth) -> OAuthClient:
        """RFC 6749 §2.3: confidential clients by secret (Basic or POST), public ones by id alone.

        Every failure is the same ``invalid_client``, so the answer never says which part was wrong.
        """
        failure = InvalidClient("client authentication failed", reason="client_auth_failed")
        if not auth.client_id:
            raise failure
        client = await self._store.get_client(auth.client_id)
        presented = secret_digest(auth.secret) if auth.secret is not None else ""
        if client is None:
            raise failure
        if client.type is ClientType.PUBLIC:
            if auth.secret is not None:
                raise failure
            return client
        if client.secret_digest is None or auth.secret is None:
            raise failure
        if not hmac.compare_digest(client.secret_digest.encode(), presented.encode()):
            raise InvalidClient("client authentication failed", reason="client_secret_wrong")
        return client

    def delegable_scopes(self) -> tuple[str, ...]:
        """The scopes of ``roles.yaml``'s table a client may be registered for."""
        return tuple(s for s in self._policy.model.scopes if _delegable(s))

    def describe_scope(self, scope: str) -> str:
        """The scope in words, from ``roles.yaml``'s table (a wildcard lists what it covers)."""
        table = self._policy.model.scopes
        if scope in table:
            return table[scope]
        covered = [text for name, text in table.items() if _delegable(name) and scope_rules.covers(scope, name)]
        return "; ".join(covered) or scope


async def audit_client_event(audit: AuditLog, action: Action, actor: Actor, client: OAuthClient) -> None:
    """``oauth_client.created`` / ``.deleted``: the client's id, name, type and scopes (never its secret)."""
    await audit.record(
        action,
        actor,
        org_id=client.org_id,
        target_type="oauth_client",
        target_id=client.id,
        detail={"name": client.name, "type": client.type.value, "scopes": " ".join(client.scopes)},
    )


def _delegable(scope: str) -> bool:
    """Partners get resource scopes only: never ``admin``, ``system:…``, or a ``*:`` wildcard over them."""
    parts = scope_rules.split(scope)
    return parts is not None and parts[0] not in _FORBIDDEN_RESOURCES


def _check_org(grantor: Principal, org_id: str) -> None:
    if org_id != grantor.org_id and not scope_rules.allows(grantor.scopes, SYSTEM_ORGS_SCOPE):
        raise Forbidden(
            f"this credential cannot act in another organisation: missing scope {SYSTEM_ORGS_SCOPE}",
            reason="cross_org",
        )


def _may_see(viewer: Principal | None, client: OAuthClient) -> bool:
    return viewer is None or client.org_id == viewer.org_id or scope_rules.allows(viewer.scopes, SYSTEM_ORGS_SCOPE)
