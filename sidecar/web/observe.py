"""Request id, the request-latency metric and the one log line per request.

``RequestObserver`` finishes every request, whichever path served it: the outermost middleware
here for aiohttp's routes, ``sidecar.web.fast_lane`` for the routes it answers. Per request it
does only: two ``perf_counter`` calls, one header lookup, one dict lookup for the cached
histogram child, and the log line only when logging is on for that request
(``RequestLogPolicy``). Handlers and the error middleware add the decision reason and the
caller's key id to the ``Observation`` (``note``); nothing here ever sees a key or token.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from sidecar.logs import AccessLog, RecordAccessLog
from sidecar.metrics import Metrics
from sidecar.models import Principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_HEADER = "X-Request-Id"
UNMATCHED_ROUTE = "unmatched"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class Observation:
    """What one request's log line and audit records need; filled in as the request goes."""

    __slots__ = ("principal", "reason", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.reason: str | None = None
        self.principal: Principal | None = None


OBSERVATION = web.RequestKey("observation", Observation)


def note(request: web.Request, *, reason: str | None = None, principal: Principal | None = None) -> None:
    """Record the decision ``reason`` and/or the authenticated caller for the log line and the audit."""
    observation = request.get(OBSERVATION)
    if observation is None:
        return
    if reason is not None:
        observation.reason = reason
    if principal is not None:
        observation.principal = principal


def observed_principal(request: web.Request) -> Principal | None:
    observation = request.get(OBSERVATION)
    return None if observation is None else observation.principal


def request_id(request: web.Request) -> str | None:
    observation = request.get(OBSERVATION)
    return None if observation is None else observation.request_id


def route_of(request: web.Request) -> str:
    """The matched route's path template (``/v1/api_keys/{key_id}``), never the raw path."""
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


_ID_PREFIX = os.urandom(6).hex()  # this process's 48 random bits; a counter makes each id unique
_id_counter = itertools.count(1)


def incoming_or_new_request_id(value: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is short and plain, else a new one (24 hex digits).

    New ids are this process's random prefix plus a counter: unique without a syscall per request.
    """
    if value is not None and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return f"{_ID_PREFIX}{next(_id_counter):012x}"


@dataclass(frozen=True, slots=True)
class RequestLogPolicy:
    """Which requests get a log line: see ``RequestLogSettings``."""

    mode: str = "all"  # all | errors | off
    quiet_routes: frozenset[str] = frozenset()
    sample_rate: float = 1.0

    def wants(self, route: str, status: int) -> bool:
        if self.mode == "off":
            return False
        if route in self.quiet_routes:
            return status >= 500
        if status >= 400:
            return True
        if self.mode == "errors":
            return False
        return self.sample_rate >= 1.0 or random.random() < self.sample_rate


DenialHook = Callable[[web.Request, str], Awaitable[None]]


class RequestObserver:
    """The end of every request: its latency in the histogram, and its log line.

    The observe middleware and the fast lane (``sidecar.web.fast_lane``) both finish their
    requests here, so a request is counted and logged the same way whichever served it.
    """

    __slots__ = ("_lines", "_log_on", "_metrics", "_on_answer", "_policy")

    def __init__(
        self,
        metrics: Metrics | None,
        policy: RequestLogPolicy,
        access_log: AccessLog | None = None,
        *,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        """``metrics`` is ``None`` when metrics are off; ``access_log`` takes the lines (default:
        ``logging`` records of ``sidecar.access``); ``on_answer`` is told the route of every
        request answered (``TurnBatch.answered``)."""
        self._metrics = metrics
        self._policy = policy
        self._lines = access_log or RecordAccessLog()
        self._log_on = policy.mode != "off"
        self._on_answer = on_answer

    def finish(self, observation: Observation, method: str, route: str, status: int, elapsed: float) -> None:
        if self._on_answer is not None:
            self._on_answer(route)
        if self._metrics is not None:
            self._metrics.observe_request(route, method, status, elapsed)
        if self._log_on and self._lines.enabled and self._policy.wants(route, status):
            principal = observation.principal
            self._lines.request(
                request_id=observation.request_id,
                method=method,
                route=route,
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                reason=observation.reason,
                key_id=principal.key_id if principal is not None else None,
            )


OBSERVER = web.AppKey("request_observer", RequestObserver)


def observe_middleware(observer: RequestObserver, *, on_forbidden: DenialHook | None = None) -> Middleware:
    """Build the middleware around ``observer``; ``on_forbidden(request, route)`` runs after a 403
    (the audit trail's "permission denied")."""
    perf_counter = time.perf_counter
    finish = observer.finish

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        observation = Observation(incoming_or_new_request_id(request.headers.get(REQUEST_ID_HEADER)))
        request[OBSERVATION] = observation
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = observation.request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = observation.request_id
            raise
        finally:
            route = route_of(request)
            finish(observation, request.method, route, status, perf_counter() - started)
            if status == 403 and on_forbidden is not None:
                await on_forbidden(request, route)

    return observe
