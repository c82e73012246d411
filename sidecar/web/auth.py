"""Authenticating the caller of our own endpoints, and ``/v1/auth/validate`` and ``/permissions``."""

from __future__ import annotations

from aiohttp import web

from sidecar.domain.authn import bearer_credential
from sidecar.domain.origins import BrowserOrigins
from sidecar.errors import BrowserCredentialRefused
from sidecar.metrics import Metrics
from sidecar.models import Principal
from sidecar.web import ratelimit
from sidecar.web.cors import CORS, origin_of
from sidecar.web.observe import note
from sidecar.web.render import principal_json
from sidecar.web.state import METRICS, SERVICES

routes = web.RouteTableDef()


def check_origin(origins: BrowserOrigins, metrics: Metrics, principal: Principal, origin: str | None) -> None:
    """``BrowserOrigins.check``, with every refusal counted by reason and key type."""
    try:
        origins.check(principal, origin)
    except BrowserCredentialRefused as exc:
        metrics.browser_credential_refused(exc.reason, exc.key_type)
        raise


async def caller(request: web.Request, *, scope: str | None = None) -> Principal:
    """The authenticated caller (401 otherwise), holding ``scope`` if given (403 otherwise).

    From a browser (an ``Origin`` header), a secret or restricted key, or a publishable key from
    an origin it does not allow, is a 401, counted in ``sidecar_browser_credential_refusals_total``.
    """
    services = request.app[SERVICES]
    principal = await ratelimit.authenticate(request, bearer_credential(request.headers.get("Authorization")))
    check_origin(request.app[CORS].origins, request.app[METRICS], principal, origin_of(request))
    note(request, principal=principal)
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
