"""Rate limiting at the edge: who the client is, and the ``RateLimit-*`` headers on our responses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from sidecar.errors import RateLimited, Unauthorized
from sidecar.models import Principal
from sidecar.ports.ratelimit import Decision
from sidecar.web.state import METRICS, SERVICES

_DECISION = web.RequestKey("ratelimit_decision", Decision)


def client_ip(request: web.Request, trusted_hops: int) -> str:
    """The caller's address: the peer, or with ``trusted_hops`` proxies in front, the address the
    outermost trusted proxy saw (counted from the right of ``X-Forwarded-For``, which clients can forge
    only to the left of what our proxies append)."""
    if trusted_hops > 0:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(hops) >= trusted_hops:
            return hops[-trusted_hops]
    return request.remote or "unknown"


async def authenticate(request: web.Request, credential: str | None) -> Principal:
    """Authenticate ``credential`` and count the call: against the key, or (failed) against the IP."""
    services = request.app[SERVICES]
    limits = services.ratelimits
    if limits is None:
        return await services.authenticator.authenticate(credential)
    try:
        principal = await services.authenticator.authenticate(credential)
    except Unauthorized:
        with _counted(request, "client_ip"):
            request[_DECISION] = await limits.check_client(client_ip(request, limits.trusted_hops))
        raise
    with _counted(request, "key"):
        request[_DECISION] = await limits.check_principal(principal)
    return principal


@contextmanager
def _counted(request: web.Request, scope: str) -> Iterator[None]:
    """Count a rejection in ``sidecar_rate_limit_rejections_total{scope}``."""
    try:
        yield
    except RateLimited:
        request.app[METRICS].rate_limited(scope)
        raise


def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Before a response goes out (``on_response_prepare``, see ``sidecar.app``): tell the client
    where it stands (IETF RateLimit header fields)."""
    decision = request.get(_DECISION)
    if decision is None or "RateLimit-Limit" in response.headers:
        return
    response.headers["RateLimit-Limit"] = str(decision.limit)
    response.headers["RateLimit-Remaining"] = str(decision.remaining)
    response.headers["RateLimit-Reset"] = str(math.ceil(decision.reset_s))
