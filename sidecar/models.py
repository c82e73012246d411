"""Frozen values shared across layers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyType(enum.StrEnum):
    SECRET = "secret"  # noqa: S105 - a key type, not a password
    RESTRICTED = "restricted"
    PUBLISHABLE = "publishable"


class Environment(enum.StrEnum):
    LIVE = "live"
    TEST = "test"


class CredentialType(enum.StrEnum):
    API_KEY = "api_key"
    SESSION_JWT = "session_jwt"
    #: a token of a trusted external identity provider (Clerk, Auth0, …)
    EXTERNAL_JWT = "external_jwt"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key. Holds the key's digest, never the key."""

    id: str
    digest: str
    prefix: str
    last4: str
    name: str
    type: KeyType
    role: str
    environment: Environment
    org_id: str
    team_id: str | None
    user_id: str | None
    permissions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    allowed_origins: tuple[str, ...] = ()
    rolled_to: str | None = None

    @property
    def display(self) -> str:
        """Stripe-style display form: prefix, an ellipsis, the last four characters."""
        return f"{self.prefix}…{self.last4}"

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.is_expired(now):
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, after authentication: what Hasura and our own endpoints act on."""

    credential_type: CredentialType
    subject: str
    org_id: str | None
    role: str
    allowed_roles: tuple[str, ...]
    scopes: tuple[str, ...]
    environment: Environment
    team_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    key_type: KeyType | None = None
    expires_at: datetime | None = None
    token_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: a publishable key's browser origins (empty: any); see ``sidecar.domain.origins``
    allowed_origins: tuple[str, ...] = ()


class ClientType(enum.StrEnum):
    """RFC 6749 §2.1: confidential clients hold a secret; public ones cannot, so PKCE binds them."""

    CONFIDENTIAL = "confidential"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A registered partner application. Holds its secret's digest, never the secret."""

    id: str
    name: str
    type: ClientType
    secret_digest: str | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    org_id: str
    created_at: datetime
    secret_last4: str | None = None


@dataclass(frozen=True, slots=True)
class OAuthSubject:
    """Whom an OAuth grant acts for: the approving merchant, or the client itself."""

    subject: str
    org_id: str
    environment: Environment
    team_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An issued authorization code (stored as a digest), bound to client, redirect URI and PKCE."""

    digest: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: tuple[str, ...]
    subject: OAuthSubject
    grant_id: str
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OAuthGrant:
    """One approval (or one client-credentials issue): the family its tokens belong to."""

    id: str
    client_id: str
    scopes: tuple[str, ...]
    subject: OAuthSubject
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """A refresh token (stored as a digest); ``used_at`` is set when it is rotated."""

    digest: str
    grant_id: str
    client_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """An access token the authorization server issued, by its ``jti``, so it can be revoked."""

    jti: str
    grant_id: str
    client_id: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, Stripe style."""

    data: list[T]
    has_more: bool


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A stored signing key: its private half sealed (encrypted at rest), never in clear."""

    kid: str
    algorithm: str
    private_sealed: str
    created_at: datetime
    #: when it starts signing; ``created_at`` plus the JWKS max-age for a rotation
    activates_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail: who did what, to what, when and from where."""

    id: str
    occurred_at: datetime
    action: str  # "api_key.created", "admin.permission_denied", …
    actor_id: str  # the acting key id, a token subject, "cli" or "system"
    actor_type: str  # api_key | session_jwt | cli | system
    org_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """A filtered page of the audit trail, newest first."""

    limit: int = 10
    starting_after: str | None = None
    action: str | None = None
    key_id: str | None = None  # events by this key or about it
    org_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
