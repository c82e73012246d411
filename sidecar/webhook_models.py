"""Frozen values of outgoing webhooks, shared by the domain, the stores and the web layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class SignatureFormat(enum.StrEnum):
    """How a delivery is signed: ``Stateset-Signature`` (Stripe-style) or Standard Webhooks headers."""

    STATESET = "stateset"
    STANDARD = "standard"


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """One signing secret of an endpoint; during a roll the old one has an ``expires_at``."""

    secret: str
    created_at: datetime
    expires_at: datetime | None = None

    def is_current(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where to deliver which events, how to sign them; ``secrets`` newest first."""

    id: str
    url: str
    events: tuple[str, ...]
    format: SignatureFormat
    enabled: bool
    description: str
    created_at: datetime
    secrets: tuple[EndpointSecret, ...] = ()

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """Every current secret, newest first: all of them sign while a roll overlaps."""
        return tuple(s.secret for s in self.secrets if s.is_current(now))
