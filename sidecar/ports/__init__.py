"""Ports: the small Protocols domain services use to reach the outside world.

Adapters (``sqlite``, ``postgres``, ``memory_cache``, ``clock``) implement them; only
``sidecar.app`` and the CLI pick an adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sidecar.models import ApiKeyRecord, AuditEvent, AuditQuery, KeyType, Page, SigningKeyRecord
from sidecar.webhook_models import Delivery, DeliveryAttempt, DeliveryStatus, EndpointSecret, WebhookEndpoint


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for TTLs and intervals."""
        ...


class KeyStore(Protocol):
    """Durable storage of API key records, looked up by id or by the key's digest."""

    async def ping(self) -> None:
        """Raise if the store cannot answer."""
        ...

    async def insert_key(self, record: ApiKeyRecord) -> None: ...

    async def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def get_key_by_digest(self, digest: str) -> ApiKeyRecord | None: ...

    async def list_keys(
        self,
        *,
        org_id: str | None,
        key_type: KeyType | None,
        limit: int,
        starting_after: str | None,
    ) -> Page[ApiKeyRecord]:
        """Newest first; ``starting_after`` is the id of the last record of the previous page."""
        ...

    async def count_keys(self) -> int: ...

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        """Mark revoked (idempotent: an already revoked key keeps its first revocation time)."""
        ...

    async def roll_key(self, old_id: str, old_expires_at: datetime, new: ApiKeyRecord) -> None:
        """Insert ``new`` and shorten the old key's expiry, atomically."""
        ...

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        """Record when each key id was last used (a batch; later times win)."""
        ...

    async def set_key_scopes(self, key_id: str, scopes: Sequence[str]) -> None:
        """Replace the key's rows in the key-scope table (``api_key_scopes``), which Hasura may read."""
        ...

    async def mark_key_tokens(self, key_id: str, until: datetime) -> bool:
        """Record that session tokens exchanged for the key may live until ``until`` (a later end
        already recorded stays). ``False``, recording nothing, when the key is revoked or unknown.

        Serialised with ``revoke_key`` on the key's row: a mark either lands before the
        revocation (and ``key_tokens_until`` then returns it) or is refused after it.
        """
        ...

    async def key_tokens_until(self, key_id: str) -> datetime | None:
        """The latest end recorded by ``mark_key_tokens``; ``None`` if the key never exchanged a token."""
        ...


class KeyCache(Protocol):
    """The in-process tier of key lookups: bounded, with TTLs, synchronous (no I/O)."""

    def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None]:
        """``(hit, record)``; a hit with ``None`` is a cached 'no such key'."""
        ...

    def put(self, digest: str, record: ApiKeyRecord | None) -> None: ...

    def evict(self, digest: str) -> None: ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...


class SharedKeyCache(Protocol):
    """The tier shared by all replicas (Redis), between the in-process cache and the store.

    Best effort: an unreachable cache behaves as an empty one and never raises.
    """

    async def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None]:
        """``(hit, record)``; a hit with ``None`` is a cached 'no such key'; a miss when unreachable."""
        ...

    async def put(self, digest: str, record: ApiKeyRecord | None) -> None: ...

    async def invalidate(self, digest: str) -> bool:
        """Drop the entry and tell every replica to drop its in-process copy; ``False`` if undelivered."""
        ...


class SecretSealer(Protocol):
    """Authenticated encryption of small secrets, bound to a purpose (see ``ports.sealer.Sealer``)."""

    def seal(self, plaintext: bytes, *, purpose: str) -> str: ...

    def unseal(self, token: str, *, purpose: str) -> bytes:
        """The plaintext; raises ``ConfigError`` or ``ValueError`` if the token is not genuine."""
        ...


class ReplayGuard(Protocol):
    """Remembers verified webhook signatures (or message ids) so a second delivery is refused."""

    async def first_use(self, key: str, ttl_s: float) -> bool:
        """Record ``key`` for ``ttl_s`` seconds; ``False`` if it is already recorded (a replay).

        Atomic: of two concurrent calls with the same key, exactly one gets ``True``.
        """
        ...


class WebhookEndpointStore(Protocol):
    """Durable webhook endpoints with their secrets (kept sealed at rest by the adapter)."""

    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    async def list_endpoints(
        self, *, org_id: str | None, limit: int, starting_after: str | None
    ) -> Page[WebhookEndpoint]:
        """Newest first; ``starting_after`` is the id of the last endpoint of the previous page.

        ``org_id`` keeps the endpoints of that organisation only; ``None`` lists every endpoint."""
        ...

    async def list_enabled_endpoints(self) -> list[WebhookEndpoint]:
        """Every enabled endpoint (the fan-out of one event)."""
        ...

    async def update_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store the endpoint's url, events, format, enabled and description (not its org or secrets)."""
        ...

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove the endpoint and its secrets; ``False`` if there was none."""
        ...

    async def roll_secret(self, endpoint_id: str, new: EndpointSecret, old_expire_at: datetime) -> None:
        """Add ``new`` and make every current older secret expire by ``old_expire_at``, atomically;
        secrets already expired are dropped."""
        ...


class DeliveryStore(Protocol):
    """The durable outbox of webhook deliveries and their attempt log."""

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        """Insert the deliveries, skipping any (endpoint, event) already queued; how many were new."""
        ...

    async def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries due by ``now``, leased until ``lease_until`` so no other worker takes them."""
        ...

    async def record_attempt(
        self,
        attempt: DeliveryAttempt,
        *,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None:
        """Log the attempt and move the delivery on (retry at ``next_attempt_at``, delivered or failed)."""
        ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def list_deliveries(self, endpoint_id: str, *, limit: int, starting_after: str | None) -> Page[Delivery]:
        """An endpoint's deliveries, newest first."""
        ...

    async def list_attempts(self, delivery_ids: Sequence[str]) -> dict[str, list[DeliveryAttempt]]:
        """The attempts of each delivery, in order."""
        ...


@dataclass(frozen=True, slots=True)
class SendResult:
    """What came back from POSTing a delivery: a status code, or the kind of failure."""

    status_code: int | None
    error: str | None = None


class WebhookSender(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> SendResult:
        """POST ``body``; never raises for network trouble (that is a ``SendResult`` with ``error``)."""
        ...


class SigningKeyStore(Protocol):
    """Durable storage of the JWT signing keys, shared by every replica (private halves sealed)."""

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        """Every stored key, oldest activation first."""
        ...

    async def insert_signing_key(self, record: SigningKeyRecord, *, unless_activating_after: datetime | None) -> bool:
        """Insert ``record`` unless a stored key activates after ``unless_activating_after``.

        Atomic, so two replicas cannot both start a rotation (or both create the first key);
        ``None`` inserts unconditionally. Returns whether the record was inserted.
        """
        ...


class RevocationStore(Protocol):
    """Durable list of revoked session tokens (by ``jti``) and keys whose tokens are revoked (by key id).

    Entries carry ``until``: past it, the tokens they name have expired anyway and the entry can go.
    """

    async def add_revocation(self, kind: str, subject: str, until: datetime) -> None:
        """Record (or extend to the later ``until``) a revocation; ``kind`` is ``jti`` or ``key``."""
        ...

    async def revocations_since(self, cursor: int | None, now: datetime) -> tuple[list[tuple[str, str, datetime]], int]:
        """The ``(kind, subject, until)`` recorded or extended since ``cursor`` with ``until`` after
        ``now`` (every one for ``None``), and the cursor to pass next time.

        Exact: a revocation being written while this reads is in this answer or in the next. It may
        repeat some of the last answer's. Entries past their ``until`` may be deleted meanwhile.
        """
        ...


class Broadcast(Protocol):
    """A best-effort message to every replica (Redis pub/sub)."""

    async def publish(self, message: str) -> bool:
        """``False`` when the message could not be sent."""
        ...


class AuditStore(Protocol):
    """The append-only audit trail."""

    async def insert_event(self, event: AuditEvent) -> None: ...

    async def list_events(self, query: AuditQuery) -> Page[AuditEvent]:
        """Newest first; ``starting_after`` is the id of the last event of the previous page."""
        ...
