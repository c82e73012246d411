"""Mapping between webhook endpoints and the rows both SQL adapters store (secrets sealed)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sidecar.ports.rows import Row, from_ts, to_ts
from sidecar.ports.sealer import Sealer
from sidecar.webhook_models import EndpointSecret, SignatureFormat, WebhookEndpoint


def secret_purpose(endpoint_id: str) -> str:
    """Sealing is bound to the endpoint: a secret row copied to another endpoint does not open."""
    return f"webhook_secret:{endpoint_id}"


def endpoint_to_row(endpoint: WebhookEndpoint) -> tuple[Any, ...]:
    """``id, url, events, format, enabled, description, created_at``."""
    return (
        endpoint.id,
        endpoint.url,
        json.dumps(list(endpoint.events)),
        endpoint.format.value,
        endpoint.enabled,
        endpoint.description,
        to_ts(endpoint.created_at),
    )


def secret_to_row(sealer: Sealer, endpoint_id: str, secret: EndpointSecret) -> tuple[Any, ...]:
    """``endpoint_id, sealed, created_at, expires_at``."""
    sealed = sealer.seal(secret.secret.encode(), purpose=secret_purpose(endpoint_id))
    return (endpoint_id, sealed, to_ts(secret.created_at), to_ts(secret.expires_at))


def endpoints_from_rows(sealer: Sealer, rows: Iterable[Row], secret_rows: Iterable[Row]) -> list[WebhookEndpoint]:
    """Endpoints with their secrets (``secret_rows`` newest first), unsealed."""
    endpoint_rows = list(rows)
    secrets: dict[str, list[EndpointSecret]] = {row["id"]: [] for row in endpoint_rows}
    for s in secret_rows:
        plain = sealer.unseal(s["sealed"], purpose=secret_purpose(s["endpoint_id"])).decode()
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
            secrets=tuple(secrets[row["id"]]),
        )
        for row in endpoint_rows
    ]


def _at(value: float) -> Any:
    at = from_ts(value)
    assert at is not None
    return at
