"""``/v1/webhook_endpoints``: create (the secret is in this response only), list, show, update,
delete, and ``roll_secret`` (a new secret; the old ones keep signing during the overlap).

All need the ``admin`` scope and act inside the caller's organisation: another organisation's
endpoint is a 404. With ``system:orgs`` a caller sees every endpoint, may create one in any
organisation (``org_id``) or of every organisation (``all_orgs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from sidecar.domain.webhook_endpoints import MAX_EVENTS, MAX_ROLL_OVERLAP_S, EndpointChange, NewEndpoint
from sidecar.models import Page
from sidecar.web.auth import caller
from sidecar.web.bodies import parse_body, query_int
from sidecar.web.render import iso
from sidecar.web.state import SERVICES
from sidecar.webhook_models import Delivery, DeliveryAttempt, DeliveryStatus, SignatureFormat, WebhookEndpoint

routes = web.RouteTableDef()
MANAGE_SCOPE = "admin"


class CreateEndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=MAX_EVENTS)
    format: SignatureFormat = SignatureFormat.STATESET
    enabled: bool = True
    description: str = Field("", max_length=500)
    org_id: str | None = Field(None, min_length=1, max_length=128)
    all_orgs: bool = False


class UpdateEndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    url: str | None = Field(None, min_length=1, max_length=2048)
    events: list[str] | None = Field(None, min_length=1, max_length=MAX_EVENTS)
    format: SignatureFormat | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=500)


class RollSecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in: int | None = Field(None, ge=0, le=MAX_ROLL_OVERLAP_S)


def endpoint_json(endpoint: WebhookEndpoint, now: datetime) -> dict[str, Any]:
    """An endpoint on the wire: its secrets' validity, never the secrets."""
    return {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "events": list(endpoint.events),
        "format": endpoint.format.value,
        "enabled": endpoint.enabled,
        "description": endpoint.description,
        "org_id": endpoint.org_id,
        "all_orgs": endpoint.all_orgs,
        "created_at": iso(endpoint.created_at),
        "secrets": [
            {"created_at": iso(s.created_at), "expires_at": iso(s.expires_at)}
            for s in endpoint.secrets
            if s.is_current(now)
        ],
    }


def endpoints_page_json(page: Page[WebhookEndpoint], now: datetime) -> dict[str, Any]:
    return {
        "object": "list",
        "url": "/v1/webhook_endpoints",
        "data": [endpoint_json(e, now) for e in page.data],
        "has_more": page.has_more,
    }


@routes.post("/v1/webhook_endpoints")
async def create_endpoint(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    body = await parse_body(request, CreateEndpointBody)
    service = request.app[SERVICES].webhook_endpoints
    spec = NewEndpoint(
        body.url, tuple(body.events), body.format, body.enabled, body.description, body.org_id, body.all_orgs
    )
    issued = await service.create(spec, grantor=principal)
    return web.json_response({**endpoint_json(issued.endpoint, service.now()), "secret": issued.secret}, status=201)


@routes.get("/v1/webhook_endpoints")
async def list_endpoints(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    service = request.app[SERVICES].webhook_endpoints
    page = await service.list(
        viewer=principal,
        limit=query_int(request, "limit", default=10, low=1, high=100),
        starting_after=request.query.get("starting_after") or None,
    )
    return web.json_response(endpoints_page_json(page, service.now()))


@routes.get("/v1/webhook_endpoints/{endpoint_id}")
async def show_endpoint(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    service = request.app[SERVICES].webhook_endpoints
    endpoint = await service.get(request.match_info["endpoint_id"], viewer=principal)
    return web.json_response(endpoint_json(endpoint, service.now()))


@routes.post("/v1/webhook_endpoints/{endpoint_id}")
async def update_endpoint(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    body = await parse_body(request, UpdateEndpointBody)
    service = request.app[SERVICES].webhook_endpoints
    change = EndpointChange(
        url=body.url,
        events=None if body.events is None else tuple(body.events),
        format=body.format,
        enabled=body.enabled,
        description=body.description,
    )
    endpoint = await service.update(request.match_info["endpoint_id"], change, viewer=principal)
    return web.json_response(endpoint_json(endpoint, service.now()))


@routes.delete("/v1/webhook_endpoints/{endpoint_id}")
async def delete_endpoint(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    service = request.app[SERVICES].webhook_endpoints
    endpoint = await service.delete(request.match_info["endpoint_id"], viewer=principal)
    return web.json_response({**endpoint_json(endpoint, service.now()), "deleted": True})


@routes.post("/v1/webhook_endpoints/{endpoint_id}/roll_secret")
async def roll_secret(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    body = await parse_body(request, RollSecretBody, optional=True)
    service = request.app[SERVICES].webhook_endpoints
    issued = await service.roll_secret(request.match_info["endpoint_id"], viewer=principal, overlap_s=body.expires_in)
    return web.json_response({**endpoint_json(issued.endpoint, service.now()), "secret": issued.secret}, status=201)


def delivery_json(delivery: Delivery, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "trigger": delivery.trigger,
        "table": delivery.table,
        "op": delivery.op,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "created_at": iso(delivery.created_at),
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status is DeliveryStatus.PENDING else None,
        "delivered_at": iso(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "log": [
            {
                "attempt": a.number,
                "at": iso(a.at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ],
    }


@routes.get("/v1/webhook_endpoints/{endpoint_id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    principal = await caller(request, scope=MANAGE_SCOPE)
    endpoint_id = request.match_info["endpoint_id"]
    page, attempts = await request.app[SERVICES].webhook_endpoints.deliveries(
        endpoint_id,
        viewer=principal,
        limit=query_int(request, "limit", default=10, low=1, high=100),
        starting_after=request.query.get("starting_after") or None,
    )
    return web.json_response(
        {
            "object": "list",
            "url": f"/v1/webhook_endpoints/{endpoint_id}/deliveries",
            "data": [delivery_json(d, attempts.get(d.id, [])) for d in page.data],
            "has_more": page.has_more,
        }
    )
