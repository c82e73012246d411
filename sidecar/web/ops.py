"""Operations endpoints: ``/healthz`` (alive), ``/readyz`` (able to serve), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import hmac

from aiohttp import web

from sidecar.domain.authn import bearer_credential
from sidecar.errors import Unauthorized
from sidecar.metrics import CONTENT_TYPE
from sidecar.web.state import METRICS, METRICS_TOKEN, READINESS, VERSION

routes = web.RouteTableDef()
_NO_STORE = {"Cache-Control": "no-store"}


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Checks nothing else, so a slow database never restarts it."""
    return web.json_response({"status": "ok", "version": request.app[VERSION]}, headers=_NO_STORE)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: every registered check passes (store, cache, signing key); 503 otherwise."""
    report = await request.app[READINESS].run()
    checks = {c.name: {"ok": c.ok, **({"reason": c.reason} if c.reason else {})} for c in report.checks}
    status = "degraded" if report.degraded else "ready" if report.ready else "not_ready"
    return web.json_response(
        {"status": status, "checks": checks},
        status=200 if report.ready else 503,
        headers=_NO_STORE,
    )


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition; with a configured token, only for ``Authorization: Bearer <token>``."""
    expected = request.app[METRICS_TOKEN]
    if expected:
        presented = bearer_credential(request.headers.get("Authorization")) or ""
        if not hmac.compare_digest(presented.encode(), expected):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <metrics token>'", reason="metrics_token_invalid")
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, **_NO_STORE})
