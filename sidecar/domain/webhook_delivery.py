"""Delivering Hasura events to webhook endpoints, signed, through a durable outbox.

``accept`` writes one delivery per subscribed endpoint into the store; a worker (``run_once`` /
``run_forever``) claims due deliveries, signs them with the endpoint's current secrets and POSTs
them. A failure is retried with exponential backoff and jitter, up to ``max_attempts``. Every
attempt is logged. Because the outbox is the store, a restart loses nothing: what was pending is
still pending, and a delivery whose process died mid-attempt is retried once its lease runs out
(at-least-once delivery, like Hasura's own; receivers de-duplicate by delivery id).

An event goes only to endpoints of the organisation its row belongs to, read from the row's org
column as ``config/tables.yaml`` names it (``columns.org``). An event whose organisation cannot be
told (a table not in that file, a row without the column, an UPDATE that moves a row between
organisations) goes only to endpoints of every organisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import secrets as token
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sidecar.domain import signatures
from sidecar.domain.tables import TableModel
from sidecar.domain.webhook_endpoints import receives, subscribes
from sidecar.errors import Unauthorized
from sidecar.ports import Clock, DeliveryStore, WebhookEndpointStore, WebhookSender
from sidecar.webhook_models import Delivery, DeliveryAttempt, DeliveryStatus, SignatureFormat, WebhookEndpoint

log = logging.getLogger("sidecar.webhooks")
DELIVERY_ID_HEADER = "Stateset-Delivery-Id"
EVENT_ID_HEADER = "Stateset-Event-Id"


@dataclass(frozen=True, slots=True)
class HasuraEvent:
    """One Hasura event-trigger invocation; ``payload`` is what endpoints receive."""

    id: str
    trigger: str
    schema: str
    table: str
    op: str
    payload: Mapping[str, Any]
    #: the row before and after (``event.data.old`` / ``.new``), as Hasura sent them
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None

    def org_of_rows(self, column: str | None) -> str | None:
        """The organisation of the event's row: the value of ``column`` in the old and new row,
        which must agree; ``None`` when there is no column, no value, or two values."""
        if column is None:
            return None
        values = {_org_value(row.get(column)) for row in (self.old, self.new) if row is not None}
        return values.pop() if len(values) == 1 else None


def _org_value(value: object) -> str | None:
    """An org column's value as the org id sessions carry: text, or an integer as text."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def org_columns(tables: TableModel) -> dict[str, str]:
    """``schema.table`` -> its org column, for every table of ``tables.yaml``."""
    return {table.qualified: table.columns.org for table in tables.tables}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 5.0
    max_s: float = 3600.0

    def delay_s(self, failed_attempts: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: half the step is fixed, half random."""
        step: float = min(self.max_s, self.base_s * 2.0 ** (failed_attempts - 1))
        return step / 2 + rng.uniform(0, step / 2)


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = 10.0
    batch_size: int = 20


def new_delivery_id() -> str:
    return "del_" + token.token_hex(12)


class DeliveryService:
    def __init__(
        self,
        endpoints: WebhookEndpointStore,
        outbox: DeliveryStore,
        sender: WebhookSender,
        clock: Clock,
        *,
        events_secret: str | None,
        org_columns: Mapping[str, str],
        options: DeliveryOptions = DeliveryOptions(),
        rng: random.Random | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._outbox = outbox
        self._sender = sender
        self._clock = clock
        self._events_secret = events_secret.encode() if events_secret else None
        self._org_columns = dict(org_columns)
        self._options = options
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    def now(self) -> datetime:
        return self._clock.now()

    # --- intake ---------------------------------------------------------------------------------

    def authenticate_hasura(self, presented: str | None) -> None:
        """Check the shared secret Hasura's event trigger sends, in constant time."""
        if self._events_secret is None:
            raise Unauthorized(
                "Hasura event delivery is off: set SIDECAR_WEBHOOK__HASURA_EVENTS_SECRET", reason="events_disabled"
            )
        given = (presented or "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._events_secret):
            raise Unauthorized("the Hasura event secret header is missing or wrong", reason="events_secret_invalid")

    async def accept(self, event: HasuraEvent) -> tuple[int, int]:
        """Queue the event for every enabled endpoint subscribed to it and allowed to see the row's
        organisation: ``(subscribed, newly queued)``.

        A repeated event id (Hasura retrying) queues nothing twice."""
        body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()
        now = self._clock.now()
        org_id = event.org_of_rows(self._org_columns.get(f"{event.schema}.{event.table}"))
        targets = [
            e
            for e in await self._endpoints.list_enabled_endpoints()
            if subscribes(e, trigger=event.trigger, schema=event.schema, table=event.table) and receives(e, org_id)
        ]
        deliveries = [
            Delivery(
                id=new_delivery_id(),
                endpoint_id=endpoint.id,
                event_id=event.id,
                trigger=event.trigger,
                table=f"{event.schema}.{event.table}",
                op=event.op,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            for endpoint in targets
        ]
        added = await self._outbox.enqueue(deliveries)
        if added:
            self._wake.set()
        return len(targets), added

    # --- the worker -------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Attempt every delivery due now (one batch); how many were attempted."""
        now = self._clock.now()
        lease = now + timedelta(seconds=self._options.timeout_s + 30)
        due = await self._outbox.claim_due(now, lease_until=lease, limit=self._options.batch_size)
        await asyncio.gather(*(self._attempt(d) for d in due))
        return len(due)

    async def run_forever(self, poll_interval_s: float) -> None:
        while True:
            try:
                attempted = await self.run_once()
            except Exception:
                log.exception("webhook delivery pass failed; will retry")
                attempted = 0
            if attempted:
                continue
            self._wake.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives as the event is set, and the worker would then never stop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_interval_s):
                    await self._wake.wait()

    async def _attempt(self, delivery: Delivery) -> None:
        number = delivery.attempts + 1
        endpoint = await self._endpoints.get_endpoint(delivery.endpoint_id)
        now = self._clock.now()
        if endpoint is None or not endpoint.enabled or not endpoint.signing_secrets(now):
            why = "endpoint_disabled" if endpoint is not None and not endpoint.enabled else "endpoint_unusable"
            attempt = DeliveryAttempt(delivery.id, number, now, None, why, 0)
            await self._outbox.record_attempt(attempt, status=DeliveryStatus.FAILED, next_attempt_at=None)
            return
        started = self._clock.monotonic()
        result = await self._sender.post(
            endpoint.url, delivery.body, self._headers(endpoint, delivery, now), timeout_s=self._options.timeout_s
        )
        attempt = DeliveryAttempt(
            delivery.id,
            number,
            now,
            result.status_code,
            result.error or (None if _ok(result.status_code) else f"http_{result.status_code}"),
            int((self._clock.monotonic() - started) * 1000),
        )
        status, next_at = self._next_step(attempt)
        await self._outbox.record_attempt(attempt, status=status, next_attempt_at=next_at)
        if not attempt.succeeded:
            log.info("webhook delivery %s attempt %d failed: %s", delivery.id, number, attempt.error)

    def _headers(self, endpoint: WebhookEndpoint, delivery: Delivery, now: datetime) -> dict[str, str]:
        signed = signatures.sign(
            endpoint.format,
            delivery.body,
            endpoint.signing_secrets(now),
            timestamp=int(now.timestamp()),
            message_id=delivery.id,  # the same id on every retry, as Standard Webhooks asks
        )
        ids = {EVENT_ID_HEADER: delivery.event_id}
        if endpoint.format is SignatureFormat.STATESET:
            ids[DELIVERY_ID_HEADER] = delivery.id
        return {**signed, **ids}

    def _next_step(self, attempt: DeliveryAttempt) -> tuple[DeliveryStatus, datetime | None]:
        if attempt.succeeded:
            return DeliveryStatus.DELIVERED, None
        retry = self._options.retry
        if attempt.number >= retry.max_attempts:
            return DeliveryStatus.FAILED, None
        return DeliveryStatus.PENDING, attempt.at + timedelta(seconds=retry.delay_s(attempt.number, self._rng))


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300
