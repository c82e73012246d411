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


def concurrency_middleware(max_concurrent: int, retry_after_s: int, metrics: Metrics | None) -> Middleware:
    """At most ``max_concurrent`` requests in flight (``UNBOUNDED_PATHS`` aside); the rest get 503."""
    in_flight = 0

    @web.middleware
    async def bound_concurrency(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if request.path in UNBOUNDED_PATHS:
            return await handler(request)
        if in_flight >= max_concurrent:
            error = Overloaded("too many requests in flight; retry later", retry_after=retry_after_s)
            note(request, reason=error.reason)
            if metrics is not None:
                metrics.overloaded()
            return error_response(error)
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

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
