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
