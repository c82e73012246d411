"""``/v1/oauth/clients``: register (the secret is in this response only), list, show, delete."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from sidecar.domain.audit import Action
from sidecar.domain.oauth_clients import NewClient, OAuthClientService, audit_client_event
from sidecar.models import ClientType, OAuthClient, Principal
from sidecar.web.audit import actor_for
from sidecar.web.auth import caller
from sidecar.web.bodies import parse_body, query_int
from sidecar.web.render import iso
from sidecar.web.state import AUDIT, SERVICES

routes = web.RouteTableDef()
log = logging.getLogger("sidecar.audit")
MANAGE_SCOPE = "admin"


class CreateClientBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=100)
    type: ClientType = ClientType.CONFIDENTIAL
    redirect_uris: list[str] = Field(min_length=1, max_length=10)
    scopes: list[str] = Field(min_length=1, max_length=50)
    org_id: str | None = Field(None, min_length=1, max_length=128)

    def to_spec(self) -> NewClient:
        return NewClient(
            name=self.name,
            type=self.type,
            redirect_uris=tuple(self.redirect_uris),
            scopes=tuple(self.scopes),
            org_id=self.org_id,
        )


def client_json(client: OAuthClient) -> dict[str, Any]:
    return {
        "id": client.id,
        "object": "oauth_client",
        "name": client.name,
        "type": client.type.value,
        "redirect_uris": list(client.redirect_uris),
        "scopes": list(client.scopes),
        "org_id": client.org_id,
        "secret_display": f"ocs_…{client.secret_last4}" if client.secret_last4 else None,
        "created_at": iso(client.created_at),
    }


async def _audit(request: web.Request, action: Action, actor: Principal, client: OAuthClient) -> None:
    """Best effort, after the change: a failed write is logged, never an error response."""
    audit = request.app.get(AUDIT)
    if audit is None:
        return
    try:
        await audit_client_event(audit, action, actor_for(request, actor), client)
    except Exception:
        log.exception("could not record an audit event")


def _clients(request: web.Request) -> OAuthClientService:
    oauth = request.app[SERVICES].oauth
    if oauth is None:
        raise web.HTTPNotFound()
    return oauth.clients


@routes.post("/v1/oauth/clients")
async def create_client(request: web.Request) -> web.Response:
    grantor = await caller(request, scope=MANAGE_SCOPE)
    body = await parse_body(request, CreateClientBody)
    issued = await _clients(request).create(body.to_spec(), grantor=grantor)
    await _audit(request, Action.OAUTH_CLIENT_CREATED, grantor, issued.client)
    return web.json_response({**client_json(issued.client), "client_secret": issued.secret}, status=201)


@routes.get("/v1/oauth/clients")
async def list_clients(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    page = await _clients(request).list(
        viewer=viewer,
        limit=query_int(request, "limit", default=10, low=1, high=100),
        starting_after=request.query.get("starting_after") or None,
    )
    return web.json_response(
        {
            "object": "list",
            "url": "/v1/oauth/clients",
            "data": [client_json(c) for c in page.data],
            "has_more": page.has_more,
        }
    )


@routes.get("/v1/oauth/clients/{client_id}")
async def show_client(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    return web.json_response(client_json(await _clients(request).get(request.match_info["client_id"], viewer=viewer)))


@routes.delete("/v1/oauth/clients/{client_id}")
async def delete_client(request: web.Request) -> web.Response:
    viewer = await caller(request, scope=MANAGE_SCOPE)
    client = await _clients(request).delete(request.match_info["client_id"], viewer=viewer)
    await _audit(request, Action.OAUTH_CLIENT_DELETED, viewer, client)
    return web.json_response({**client_json(client), "deleted": True})
