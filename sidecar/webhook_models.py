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
    """Where to deliver which events, how to sign them; ``secrets`` newest first.

    ``org_id`` is the organisation the endpoint belongs to: it receives only events of that
    organisation's rows and only that organisation's callers see it. ``None`` is an endpoint of
    every organisation, which only callers holding ``system:orgs`` (or the local CLI) manage.
    """

    id: str
    url: str
    events: tuple[str, ...]
    format: SignatureFormat
    enabled: bool
    description: str
    created_at: datetime
    org_id: str | None
    secrets: tuple[EndpointSecret, ...] = ()

    @property
    def all_orgs(self) -> bool:
        return self.org_id is None

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """Every current secret, newest first: all of them sign while a roll overlaps."""
        return tuple(s.secret for s in self.secrets if s.is_current(now))


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint: a row of the durable outbox."""

    id: str
    endpoint_id: str
    event_id: str
    trigger: str
    table: str
    op: str
    body: bytes
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One HTTP attempt of a delivery: the response status, or the kind of error (never a body)."""

    delivery_id: str
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
