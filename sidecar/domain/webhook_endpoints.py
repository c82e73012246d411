"""Webhook endpoints: where Hasura events are delivered, with which secrets, in which format."""

from __future__ import annotations

import re
import secrets as random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sidecar.domain.signatures import new_secret
from sidecar.errors import InvalidRequest, NotFound
from sidecar.models import Page
from sidecar.ports import Clock, WebhookEndpointStore
from sidecar.webhook_models import EndpointSecret, SignatureFormat, WebhookEndpoint

#: ``*``, a Hasura event trigger name, or a ``schema.table``.
_EVENT_PATTERN = re.compile(
    r"\*|[A-Za-z][A-Za-z0-9_-]{0,127}|[A-Za-z_][A-Za-z0-9_$]{0,62}\.[A-Za-z_][A-Za-z0-9_$]{0,62}"
)
MAX_EVENTS = 100
MAX_URL_CHARS = 2048
MAX_ROLL_OVERLAP_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    url: str
    events: tuple[str, ...] = ("*",)
    format: SignatureFormat = SignatureFormat.STATESET
    enabled: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """Fields to change on an endpoint; ``None`` leaves one as it is."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    format: SignatureFormat | None = None
    enabled: bool | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """An endpoint with a new secret: the only moment the secret is shown."""

    endpoint: WebhookEndpoint
    secret: str


def new_endpoint_id() -> str:
    return "we_" + random.token_hex(12)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("url must be an absolute http or https URL", reason="invalid_url")
    if parts.username or parts.password:
        raise InvalidRequest("url must not carry credentials; the signature authenticates us", reason="invalid_url")
    return url


def check_events(events: tuple[str, ...]) -> tuple[str, ...]:
    if not events or len(events) > MAX_EVENTS:
        raise InvalidRequest(f"events must list 1-{MAX_EVENTS} entries", reason="invalid_events")
    for event in events:
        if not _EVENT_PATTERN.fullmatch(event):
            raise InvalidRequest(
                f"events: {event[:64]!r} is not '*', an event trigger name or schema.table", reason="invalid_events"
            )
    return tuple(dict.fromkeys(events))


def subscribes(endpoint: WebhookEndpoint, *, trigger: str, schema: str, table: str) -> bool:
    """Whether the endpoint wants an event of ``trigger`` on ``schema.table``."""
    wanted = set(endpoint.events)
    return "*" in wanted or trigger in wanted or f"{schema}.{table}" in wanted


class WebhookEndpointService:
    def __init__(self, store: WebhookEndpointStore, clock: Clock, *, default_roll_overlap_s: int) -> None:
        self._store = store
        self._clock = clock
        self._default_overlap = default_roll_overlap_s

    def now(self) -> datetime:
        return self._clock.now()

    async def create(self, spec: NewEndpoint) -> IssuedSecret:
        now = self._clock.now()
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=new_endpoint_id(),
            url=check_url(spec.url),
            events=check_events(spec.events),
            format=spec.format,
            enabled=spec.enabled,
            description=spec.description,
            created_at=now,
            secrets=(EndpointSecret(secret, now),),
        )
        await self._store.insert_endpoint(endpoint)
        return IssuedSecret(endpoint, secret)

    async def get(self, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self._store.get_endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {endpoint_id[:64]!r}")
        return endpoint

    async def list(self, *, limit: int, starting_after: str | None) -> Page[WebhookEndpoint]:
        return await self._store.list_endpoints(limit=limit, starting_after=starting_after)

    async def update(self, endpoint_id: str, change: EndpointChange) -> WebhookEndpoint:
        endpoint = await self.get(endpoint_id)
        updated = replace(
            endpoint,
            url=endpoint.url if change.url is None else check_url(change.url),
            events=endpoint.events if change.events is None else check_events(change.events),
            format=change.format or endpoint.format,
            enabled=endpoint.enabled if change.enabled is None else change.enabled,
            description=endpoint.description if change.description is None else change.description,
        )
        await self._store.update_endpoint(updated)
        return updated

    async def delete(self, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self.get(endpoint_id)
        await self._store.delete_endpoint(endpoint_id)
        return endpoint

    async def roll_secret(self, endpoint_id: str, *, overlap_s: int | None = None) -> IssuedSecret:
        """A new secret signs from now on; the current ones keep signing too for ``overlap_s`` seconds,
        so receivers can switch secrets without losing a delivery."""
        overlap = self._default_overlap if overlap_s is None else overlap_s
        if not 0 <= overlap <= MAX_ROLL_OVERLAP_S:
            raise InvalidRequest(f"overlap must be 0-{MAX_ROLL_OVERLAP_S} seconds", reason="invalid_overlap")
        await self.get(endpoint_id)
        now = self._clock.now()
        secret = new_secret()
        await self._store.roll_secret(endpoint_id, EndpointSecret(secret, now), now + timedelta(seconds=overlap))
        return IssuedSecret(await self.get(endpoint_id), secret)
