"""Authenticating the caller of our own endpoints, and ``/v1/auth/validate`` and ``/permissions``."""

from __future__ import annotations

from aiohttp import web

from sidecar.domain.authn import bearer_credential
from sidecar.models import Principal
from sidecar.web import ratelimit
from sidecar.web.render import principal_json
from sidecar.web.state import SERVICES

routes = web.RouteTableDef()


async def caller(request: web.Request, *, scope: str | None = None) -> Principal:
    """The authenticated caller (401 otherwise), holding ``scope`` if given (403 otherwise)."""
    services = request.app[SERVICES]
    principal = await ratelimit.authenticate(request, bearer_credential(request.headers.get("Authorization")))
    if scope is not None:
        services.policy.require(principal, scope)
    return principal


@routes.get("/v1/auth/validate")
async def validate(request: web.Request) -> web.Response:
    principal = await caller(request)
    return web.json_response({"valid": True, **principal_json(principal, request.app[SERVICES].policy)})


@routes.get("/v1/auth/permissions")
async def permissions(request: web.Request) -> web.Response:
    principal = await caller(request)
    return web.json_response(principal_json(principal, request.app[SERVICES].policy, with_matrix=True))
