"""``GET /v1/audit_events``, and recording audit events from HTTP requests (who, from where)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.domain.audit import Actor
from sidecar.domain.signing_keys import KeyStatus
from sidecar.errors import InvalidRequest
from sidecar.models import ApiKeyRecord, AuditEvent, AuditQuery, Principal
from sidecar.web.auth import caller
from sidecar.web.bodies import query_int
from sidecar.web.observe import OBSERVATION, observed_principal, request_id
from sidecar.web.render import iso
from sidecar.web.state import AUDIT

routes = web.RouteTableDef()
log = logging.getLogger("sidecar.audit")
READ_SCOPE = "admin"
#: Route templates under these prefixes are the admin API: their 403s are audited.
ADMIN_PREFIXES = ("/v1/api_keys", "/v1/audit_events", "/v1/oauth/clients", "/v1/signing_keys")


def actor_for(request: web.Request, principal: Principal | None) -> Actor:
    """The acting credential of ``request``, with its client address, user agent and request id."""
    return Actor.of(
        principal,
        ip=request.remote,
        user_agent=request.headers.get("User-Agent"),
        request_id=request_id(request),
    )


class RequestAudit:
    """Key changes (API keys, signing keys) made by one HTTP request, recorded with its actor and origin.

    Best effort after the change is made: a failed write is logged, never turned into an error
    response (the response may carry a key that is shown only once).
    """

    def __init__(self, request: web.Request, principal: Principal | None) -> None:
        self._audit = request.app.get(AUDIT)
        self._actor = actor_for(request, principal)

    async def key_created(self, record: ApiKeyRecord) -> None:
        if self._audit is not None:
            await _logged(self._audit.key_created(self._actor, record))

    async def key_rolled(self, old: ApiKeyRecord, new: ApiKeyRecord) -> None:
        if self._audit is not None:
            await _logged(self._audit.key_rolled(self._actor, old, new))

    async def key_revoked(self, record: ApiKeyRecord) -> None:
        if self._audit is not None:
            await _logged(self._audit.key_revoked(self._actor, record))

    async def signing_key_rotated(self, status: KeyStatus, *, immediate: bool) -> None:
        if self._audit is not None:
            key = status.key
            await _logged(
                self._audit.signing_key_rotated(
                    self._actor,
                    kid=key.material.kid,
                    algorithm=key.material.algorithm,
                    activates_at=key.activates_at,
                    immediate=immediate,
                )
            )


async def _logged(recording: Awaitable[AuditEvent]) -> None:
    try:
        await recording
    except Exception:
        log.exception("could not record an audit event")


async def record_denial(request: web.Request, route: str) -> None:
    """After a 403 on the admin API: an ``admin.permission_denied`` event. Never raises."""
    if not route.startswith(ADMIN_PREFIXES):
        return
    audit = request.app.get(AUDIT)
    observation = request.get(OBSERVATION)
    if audit is None or observation is None:
        return
    try:
        await audit.permission_denied(
            actor_for(request, observed_principal(request)),
            method=request.method,
            route=route,
            reason=observation.reason or "forbidden",
        )
    except Exception:
        log.exception("could not record a permission-denied audit event")


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "object": "audit_event",
        "action": event.action,
        "occurred_at": iso(event.occurred_at),
        "actor": {"id": event.actor_id, "type": event.actor_type},
        "org_id": event.org_id,
        "target": {"type": event.target_type, "id": event.target_id} if event.target_id else None,
        "origin": {"ip": event.ip, "user_agent": event.user_agent, "request_id": event.request_id},
        "detail": event.detail,
    }


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        if raw.isdigit():
            return datetime.fromtimestamp(int(raw), UTC)
        value = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(f"{name} must be UNIX seconds or an ISO 8601 time", reason="bad_query") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@routes.get("/v1/audit_events")
async def list_events(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=READ_SCOPE)
    query = AuditQuery(
        limit=query_int(request, "limit", default=10, low=1, high=100),
        starting_after=request.query.get("starting_after") or None,
        action=request.query.get("action") or None,
        key_id=request.query.get("key_id") or None,
        org_id=request.query.get("org_id") or None,
        since=_time(request, "since"),
        until=_time(request, "until"),
    )
    page = await request.app[AUDIT].list(query, viewer=viewer)
    return web.json_response(
        {
            "object": "list",
            "url": "/v1/audit_events",
            "data": [event_json(e) for e in page.data],
            "has_more": page.has_more,
        }
    )
