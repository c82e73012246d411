"""Mapping between webhook endpoints and the rows both SQL adapters store (secrets sealed)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sidecar.errors import ConfigError
from sidecar.ports.rows import Row, from_ts, to_ts
from sidecar.ports.sealer import Sealer
from sidecar.webhook_models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointSecret,
    SignatureFormat,
    WebhookEndpoint,
)


def need_sealer(sealer: Sealer | None) -> Sealer:
    """Webhook secrets are sealed at rest: a store opened without a ``Sealer`` cannot touch them."""
    if sealer is None:
        raise ConfigError("webhook secrets need the master key: open the stores with a Sealer")
    return sealer


def secret_purpose(endpoint_id: str) -> str:
    """Sealing is bound to the endpoint: a secret row copied to another endpoint does not open."""
    return f"webhook_secret:{endpoint_id}"


#: The columns of ``webhook_endpoints``, in ``endpoint_to_row`` order (``org_id`` NULL: every org).
ENDPOINT_COLUMNS = ("id", "url", "events", "format", "enabled", "description", "created_at", "org_id")


def endpoint_to_row(endpoint: WebhookEndpoint) -> tuple[Any, ...]:
    """The values of ``ENDPOINT_COLUMNS``."""
    return (
        endpoint.id,
        endpoint.url,
        json.dumps(list(endpoint.events)),
        endpoint.format.value,
        endpoint.enabled,
        endpoint.description,
        to_ts(endpoint.created_at),
        endpoint.org_id,
    )


def secret_to_row(sealer: Sealer | None, endpoint_id: str, secret: EndpointSecret) -> tuple[Any, ...]:
    """``endpoint_id, sealed, created_at, expires_at``."""
    sealed = need_sealer(sealer).seal(secret.secret.encode(), purpose=secret_purpose(endpoint_id))
    return (endpoint_id, sealed, to_ts(secret.created_at), to_ts(secret.expires_at))


def endpoints_from_rows(
    sealer: Sealer | None, rows: Iterable[Row], secret_rows: Iterable[Row]
) -> list[WebhookEndpoint]:
    """Endpoints with their secrets (``secret_rows`` newest first), unsealed."""
    endpoint_rows = list(rows)
    secrets: dict[str, list[EndpointSecret]] = {row["id"]: [] for row in endpoint_rows}
    for s in secret_rows:
        plain = need_sealer(sealer).unseal(s["sealed"], purpose=secret_purpose(s["endpoint_id"])).decode()
        secrets[s["endpoint_id"]].append(EndpointSecret(plain, _at(s["created_at"]), from_ts(s["expires_at"])))
    return [
        WebhookEndpoint(
            id=row["id"],
            url=row["url"],
            events=tuple(json.loads(row["events"])),
            format=SignatureFormat(row["format"]),
            enabled=bool(row["enabled"]),
            description=row["description"],
            created_at=_at(row["created_at"]),
            org_id=row["org_id"],
            secrets=tuple(secrets[row["id"]]),
        )
        for row in endpoint_rows
    ]


def _at(value: float) -> datetime:
    at = from_ts(value)
    assert at is not None
    return at


DELIVERY_COLUMNS = (
    "id",
    "endpoint_id",
    "event_id",
    "trigger_name",
    "table_name",
    "op",
    "body",
    "created_at",
    "status",
    "attempts",
    "next_attempt_at",
    "delivered_at",
    "last_status_code",
    "last_error",
)


def delivery_to_row(delivery: Delivery) -> tuple[Any, ...]:
    return (
        delivery.id,
        delivery.endpoint_id,
        delivery.event_id,
        delivery.trigger,
        delivery.table,
        delivery.op,
        delivery.body,
        to_ts(delivery.created_at),
        delivery.status.value,
        delivery.attempts,
        to_ts(delivery.next_attempt_at),
        to_ts(delivery.delivered_at),
        delivery.last_status_code,
        delivery.last_error,
    )


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        trigger=row["trigger_name"],
        table=row["table_name"],
        op=row["op"],
        body=bytes(row["body"]),
        created_at=_at(row["created_at"]),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=from_ts(row["next_attempt_at"]),
        delivered_at=from_ts(row["delivered_at"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
    )


ATTEMPT_COLUMNS = ("delivery_id", "number", "at", "status_code", "error", "duration_ms")


def attempt_to_row(attempt: DeliveryAttempt) -> tuple[Any, ...]:
    return (
        attempt.delivery_id,
        attempt.number,
        to_ts(attempt.at),
        attempt.status_code,
        attempt.error,
        attempt.duration_ms,
    )


def attempt_from_row(row: Row) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=row["delivery_id"],
        number=row["number"],
        at=_at(row["at"]),
        status_code=row["status_code"],
        error=row["error"],
        duration_ms=row["duration_ms"],
    )
