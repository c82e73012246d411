"""Webhook endpoints: where Hasura events are delivered, with which secrets, in which format.

Every endpoint belongs to one organisation (``org_id``) and receives only events of that
organisation's rows; callers see and manage only their own organisation's endpoints. A caller
holding ``system:orgs`` (and the local operator, ``viewer=None``) sees every endpoint, may act in
any organisation, and may create an endpoint of every organisation (``all_orgs``), which also
receives the events of tables without an org column.
"""

from __future__ import annotations

import re
import secrets as random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sidecar.domain import scopes as scope_rules
from sidecar.domain.addresses import check_public_host
from sidecar.domain.rbac import ALL_ORGS_SCOPE
from sidecar.domain.signatures import new_secret
from sidecar.errors import Forbidden, InvalidRequest, NotFound
from sidecar.models import Page, Principal
from sidecar.ports import Clock, DeliveryStore, WebhookEndpointStore
from sidecar.webhook_models import Delivery, DeliveryAttempt, EndpointSecret, SignatureFormat, WebhookEndpoint

#: ``*``, a Hasura event trigger name, or a ``schema.table``.
_EVENT_PATTERN = re.compile(
    r"\*|[A-Za-z][A-Za-z0-9_-]{0,127}|[A-Za-z_][A-Za-z0-9_$]{0,62}\.[A-Za-z_][A-Za-z0-9_$]{0,62}"
)
MAX_EVENTS = 100
MAX_URL_CHARS = 2048
MAX_ROLL_OVERLAP_S = 7 * 86_400

#: Each delivery id's attempts, in order.
AttemptLog = dict[str, list[DeliveryAttempt]]


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    url: str
    events: tuple[str, ...] = ("*",)
    format: SignatureFormat = SignatureFormat.STATESET
    enabled: bool = True
    description: str = ""
    #: the owning organisation; default: the caller's (the CLI's: ``SIDECAR_DEFAULT_ORG_ID``)
    org_id: str | None = None
    #: an endpoint of every organisation (``system:orgs`` only); ``org_id`` must then be unset
    all_orgs: bool = False


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


def check_url(url: str, *, allow_private: bool = False) -> str:
    """An absolute http(s) URL without credentials; a public host unless ``allow_private``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        has_credentials = bool(parts.username or parts.password)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise InvalidRequest("url must be an absolute http or https URL", reason="invalid_url") from None
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not host:
        raise InvalidRequest("url must be an absolute http or https URL", reason="invalid_url")
    if has_credentials:
        raise InvalidRequest("url must not carry credentials; the signature authenticates us", reason="invalid_url")
    if not allow_private:
        check_public_host(host)
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


def receives(endpoint: WebhookEndpoint, org_id: str | None) -> bool:
    """Whether the endpoint may receive an event of a row of ``org_id``.

    An organisation's endpoint gets its own organisation's rows only; an event whose org is
    unknown (``None``: a table with no org column, a row without a value, a row moved between
    organisations) goes only to endpoints of every organisation.
    """
    return endpoint.org_id is None or (org_id is not None and endpoint.org_id == org_id)


def all_orgs(viewer: Principal | None) -> bool:
    """Whether the caller acts across organisations: the local operator, or ``system:orgs``."""
    return viewer is None or scope_rules.allows(viewer.scopes, ALL_ORGS_SCOPE)


def may_manage(viewer: Principal | None, endpoint: WebhookEndpoint) -> bool:
    """Whether the caller may see and change the endpoint: its own organisation's, or any with
    ``system:orgs``. An endpoint of every organisation belongs to no caller's organisation."""
    return all_orgs(viewer) or (viewer is not None and endpoint.org_id is not None and endpoint.org_id == viewer.org_id)


def _cross_org(message: str) -> Forbidden:
    return Forbidden(f"{message}: missing scope {ALL_ORGS_SCOPE}", reason="cross_org")


class WebhookEndpointService:
    def __init__(
        self,
        store: WebhookEndpointStore,
        outbox: DeliveryStore,
        clock: Clock,
        *,
        default_roll_overlap_s: int,
        default_org_id: str,
        allow_private_urls: bool = False,
    ) -> None:
        self._store = store
        self._clock = clock
        self._default_overlap = default_roll_overlap_s
        self._default_org = default_org_id
        self._outbox = outbox
        self._allow_private = allow_private_urls

    def now(self) -> datetime:
        return self._clock.now()

    def _owner(self, spec: NewEndpoint, grantor: Principal | None) -> str | None:
        """The organisation a new endpoint belongs to (``None``: every organisation)."""
        if spec.all_orgs:
            if spec.org_id is not None:
                raise InvalidRequest("give org_id or all_orgs, not both", reason="invalid_org")
            if not all_orgs(grantor):
                raise _cross_org("this credential cannot create an endpoint of every organisation")
            return None
        org_id = spec.org_id or (grantor.org_id if grantor is not None else self._default_org)
        if org_id is None:
            raise InvalidRequest("this credential has no organisation: give org_id", reason="invalid_org")
        if grantor is not None and not all_orgs(grantor) and org_id != grantor.org_id:
            raise _cross_org("this credential cannot create an endpoint in another organisation")
        return org_id

    async def create(self, spec: NewEndpoint, *, grantor: Principal | None) -> IssuedSecret:
        """Create an endpoint; ``grantor`` is the calling credential, ``None`` the local operator."""
        now = self._clock.now()
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=new_endpoint_id(),
            url=check_url(spec.url, allow_private=self._allow_private),
            events=check_events(spec.events),
            format=spec.format,
            enabled=spec.enabled,
            description=spec.description,
            created_at=now,
            org_id=self._owner(spec, grantor),
            secrets=(EndpointSecret(secret, now),),
        )
        await self._store.insert_endpoint(endpoint)
        return IssuedSecret(endpoint, secret)

    async def get(self, endpoint_id: str, *, viewer: Principal | None) -> WebhookEndpoint:
        """The endpoint, if the caller may manage it; another organisation's is ``NotFound``."""
        endpoint = await self._store.get_endpoint(endpoint_id)
        if endpoint is None or not may_manage(viewer, endpoint):
            raise NotFound(f"no webhook endpoint {endpoint_id[:64]!r}")
        return endpoint

    async def list(self, *, viewer: Principal | None, limit: int, starting_after: str | None) -> Page[WebhookEndpoint]:
        """The caller's organisation's endpoints (every endpoint with ``system:orgs``), newest first."""
        if all_orgs(viewer):
            return await self._store.list_endpoints(org_id=None, limit=limit, starting_after=starting_after)
        assert viewer is not None  # all_orgs(None) is True
        if viewer.org_id is None:
            return Page(data=[], has_more=False)
        return await self._store.list_endpoints(org_id=viewer.org_id, limit=limit, starting_after=starting_after)

    async def deliveries(
        self, endpoint_id: str, *, viewer: Principal | None, limit: int, starting_after: str | None
    ) -> tuple[Page[Delivery], AttemptLog]:
        """The endpoint's delivery log, newest first, with each delivery's attempts."""
        await self.get(endpoint_id, viewer=viewer)
        page = await self._outbox.list_deliveries(endpoint_id, limit=limit, starting_after=starting_after)
        return page, await self._outbox.list_attempts([d.id for d in page.data])

    async def update(self, endpoint_id: str, change: EndpointChange, *, viewer: Principal | None) -> WebhookEndpoint:
        endpoint = await self.get(endpoint_id, viewer=viewer)
        updated = replace(
            endpoint,
            url=endpoint.url if change.url is None else check_url(change.url, allow_private=self._allow_private),
            events=endpoint.events if change.events is None else check_events(change.events),
            format=change.format or endpoint.format,
            enabled=endpoint.enabled if change.enabled is None else change.enabled,
            description=endpoint.description if change.description is None else change.description,
        )
        await self._store.update_endpoint(updated)
        return updated

    async def delete(self, endpoint_id: str, *, viewer: Principal | None) -> WebhookEndpoint:
        endpoint = await self.get(endpoint_id, viewer=viewer)
        await self._store.delete_endpoint(endpoint_id)
        return endpoint

    async def roll_secret(
        self, endpoint_id: str, *, viewer: Principal | None, overlap_s: int | None = None
    ) -> IssuedSecret:
        """A new secret signs from now on; the current ones keep signing too for ``overlap_s`` seconds,
        so receivers can switch secrets without losing a delivery."""
        overlap = self._default_overlap if overlap_s is None else overlap_s
        if not 0 <= overlap <= MAX_ROLL_OVERLAP_S:
            raise InvalidRequest(f"overlap must be 0-{MAX_ROLL_OVERLAP_S} seconds", reason="invalid_overlap")
        await self.get(endpoint_id, viewer=viewer)
        now = self._clock.now()
        secret = new_secret()
        await self._store.roll_secret(endpoint_id, EndpointSecret(secret, now), now + timedelta(seconds=overlap))
        return IssuedSecret(await self.get(endpoint_id, viewer=viewer), secret)
