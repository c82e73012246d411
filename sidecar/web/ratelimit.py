"""Rate limiting at the edge: who the client is, and the ``RateLimit-*`` headers on our responses."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from sidecar.errors import RateLimited, Unauthorized
from sidecar.metrics import Metrics
from sidecar.models import Principal
from sidecar.ports.ratelimit import Decision
from sidecar.web.state import METRICS, SERVICES, Services


def client_ip(forwarded_for: str, peer: str | None, trusted_hops: int) -> str:
    """The caller's address: the ``peer``, or with ``trusted_hops`` proxies in front, the address
    the outermost trusted proxy saw (counted from the right of ``X-Forwarded-For``, which clients
    can forge only to the left of what our proxies append)."""
    if trusted_hops > 0:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if len(hops) >= trusted_hops:
            return hops[-trusted_hops]
    return peer or "unknown"


class CountedCall:
    """One call's rate-limit standing, once counted: the ``RateLimit-*`` fields of its answer."""

    __slots__ = ("decision",)

    def __init__(self) -> None:
        self.decision: Decision | None = None

    def headers(self) -> tuple[tuple[str, str], ...]:
        decision = self.decision
        if decision is None:
            return ()
        return (
            ("RateLimit-Limit", str(decision.limit)),
            ("RateLimit-Remaining", str(decision.remaining)),
            ("RateLimit-Reset", str(math.ceil(decision.reset_s))),
        )


async def authenticate_counted(
    services: Services, metrics: Metrics, credential: str | None, client: Callable[[int], str], call: CountedCall
) -> Principal:
    """Authenticate ``credential`` and count the call in ``call``: against the key, or (failed)
    against the address ``client(trusted_hops)`` names. Whichever HTTP path brought the call."""
    limits = services.ratelimits
    if limits is None:
        return await services.authenticator.authenticate(credential)
    try:
        principal = await services.authenticator.authenticate(credential)
    except Unauthorized:
        with _counted(metrics, "client_ip"):
            call.decision = await limits.check_client(client(limits.trusted_hops))
        raise
    with _counted(metrics, "key"):
        call.decision = await limits.check_principal(principal)
    return principal


_CALL = web.RequestKey("ratelimit_call", CountedCall)


async def authenticate(request: web.Request, credential: str | None) -> Principal:
    """``authenticate_counted`` for an aiohttp request; ``add_headers`` answers with its standing."""
    call = request[_CALL] = CountedCall()

    def client(trusted_hops: int) -> str:
        return client_ip(request.headers.get("X-Forwarded-For", ""), request.remote, trusted_hops)

    return await authenticate_counted(request.app[SERVICES], request.app[METRICS], credential, client, call)


@contextmanager
def _counted(metrics: Metrics, scope: str) -> Iterator[None]:
    """Count a rejection in ``sidecar_rate_limit_rejections_total{scope}``."""
    try:
        yield
    except RateLimited:
        metrics.rate_limited(scope)
        raise


def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Before a response goes out (``on_response_prepare``, see ``sidecar.app``): tell the client
    where it stands (IETF RateLimit header fields)."""
    call = request.get(_CALL)
    if call is None or "RateLimit-Limit" in response.headers:
        return
    for name, value in call.headers():
        response.headers[name] = value
