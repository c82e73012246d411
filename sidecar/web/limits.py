"""Request limits the HTTP server itself cannot enforce: requests in flight, and slow bodies.

Header sizes and slow headers are the server's job (``server_options`` in ``sidecar.app``
passes ``max_line_size``/``max_field_size``/``max_headers`` and ``keepalive_timeout`` to
aiohttp, whose keep-alive timer runs from the moment a connection opens until its request's
headers are complete). Once the headers are in, these two middlewares take over:

- ``concurrency_middleware`` answers 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After`` at once when
  ``max_concurrent`` requests are already in flight, rather than queueing without bound;
- ``body_deadline_middleware`` gives a client ``timeout_s`` to finish sending its body; after it
  the body's reads fail, the request gets 408 ``REQUEST_TIMEOUT`` and the connection closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from sidecar.errors import Overloaded, RequestTimeout
from sidecar.metrics import Metrics
from sidecar.web.errors import error_response
from sidecar.web.observe import note

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Probes and scrapes answer even when the process is full: an overloaded replica is alive.
UNBOUNDED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class BodyTimeout(TimeoutError):
    """Set on a request's body stream when its deadline passes.

    A ``TimeoutError``, so that aiohttp, which drains an unread body after the response, takes
    it as the end of that body and closes the connection instead of logging it as a failure.
    """


class InFlight:
    """The requests in flight, against their bound: shared by the middleware and the fast lane."""

    __slots__ = ("_count", "_metrics", "_retry_after_s", "limit")

    def __init__(self, limit: int, retry_after_s: int, metrics: Metrics | None) -> None:
        self.limit = limit
        self._retry_after_s = retry_after_s
        self._metrics = metrics
        self._count = 0

    @property
    def full(self) -> bool:
        return self._count >= self.limit

    def enter(self) -> Overloaded | None:
        """Count one more request in flight; or, at the bound, the refusal to answer with (counted)."""
        if self._count >= self.limit:
            if self._metrics is not None:
                self._metrics.overloaded()
            return Overloaded("too many requests in flight; retry later", retry_after=self._retry_after_s)
        self._count += 1
        return None

    def leave(self) -> None:
        self._count -= 1


IN_FLIGHT = web.AppKey("requests_in_flight", InFlight)


def concurrency_middleware(in_flight: InFlight) -> Middleware:
    """At most ``in_flight.limit`` requests in flight (``UNBOUNDED_PATHS`` aside); the rest get 503."""

    @web.middleware
    async def bound_concurrency(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNBOUNDED_PATHS:
            return await handler(request)
        refusal = in_flight.enter()
        if refusal is not None:
            note(request, reason=refusal.reason)
            return error_response(refusal)
        try:
            return await handler(request)
        finally:
            in_flight.leave()

    return bound_concurrency


def body_deadline_middleware(timeout_s: float) -> Middleware:
    """A request whose body is not all in after ``timeout_s`` fails with ``RequestTimeout`` (408)."""

    @web.middleware
    async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = request.content
        if body.is_eof():  # no body, or all of it arrived with the headers: the usual case
            return await handler(request)

        def expire() -> None:
            if not body.is_eof():
                body.set_exception(BodyTimeout())

        timer = asyncio.get_running_loop().call_later(timeout_s, expire)
        try:
            return await handler(request)
        except BodyTimeout:
            raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
        finally:
            timer.cancel()

    return body_deadline
