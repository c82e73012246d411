"""The fast lane: the Hasura webhook, the JWKS and the token exchange on a lean HTTP/1.1 path.

Hasura calls the webhook for every GraphQL request and caches nothing, so the cost per call
is the product's cost. Through aiohttp's web layer (its request and response objects, the
router, the middleware chain, ``on_response_prepare``) a handler that returns fixed bytes costs
about 160k instructions per request (the baseline of ``python -m bench.instructions``); an
asyncio protocol parsing the same request with llhttp and writing the answer's bytes, about 14k
(counted the same way). No library offers that middle ground for an aiohttp app, hence this module.

Every connection starts in a ``FastLaneProtocol``, which parses with httptools (llhttp, the
parser inside aiohttp too) and answers the requests it fully understands:

- ``GET`` and ``POST /v1/hasura/webhook`` (a POST body up to the webhook's limit);
- ``GET /.well-known/jwks.json``;
- ``POST /v1/auth/token`` without a body and without ``Origin`` (a server-side client asking
  for a token as its key holds it: CORS and narrowing stay aiohttp's);

over HTTP/1.1, with a ``Content-Length`` body or none, within the header bounds of
``server_options``, no ``Expect``, no upgrade. They call the same services as aiohttp's routes,
are bounded by the same ``InFlight``, answer errors through the same ``error_response`` with the
headers ``on_response_prepare`` would add, and are counted and logged by the same
``RequestObserver``. At the first request it does not take, it hands the connection, from that
request's first byte, to aiohttp's ``RequestHandler`` for good: what aiohttp would refuse
(oversized, malformed) gets aiohttp's answer, and every other route works as before. A browser
or the dashboard loses one parse per connection; Hasura's pooled connections, which only ever
call the webhook, never leave the lane.

It keeps aiohttp's connection rules: answers go out in order; the keep-alive timer closes an
idle connection and bounds the time a client has to send its headers; a request with a body is
in flight from its headers on and must finish its body within ``SIDECAR_LIMITS__BODY_TIMEOUT_S``
(else 408, and the connection closes); ``Connection: close`` closes after the answer; at
shutdown, answers in progress finish (up to the shutdown timeout). ``SIDECAR_FAST_LANE=false``
serves everything through aiohttp.

Token exchanges' answers, which come out of a batch of signatures together, are written together
at the start of the next loop turn (``Lane.send_soon``), not each as its handler ends: a client
woken by the first finds the rest already there, instead of going back to sleep between them
(each wake-up of a sleeping client, here another core of a virtual machine, costs the writer's
system time). That took the server's system time from 17.0 to 15.0 µs an RS256 exchange (wrk,
16 connections, medians of ten alternating rounds). The webhook's answers are written at once:
held to the next turn, they gained throughput, but in a ``make bench`` run their p99 at half rate
was 1.85-2.02 ms, against 1.13-1.62 ms in runs without.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import httptools
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive

from sidecar.domain.authn import bearer_credential
from sidecar.errors import RequestTimeout, SidecarError
from sidecar.web.errors import error_response, failed_response, unhandled_response
from sidecar.web.hasura import HASURA_WEBHOOK, WEBHOOK_PATH
from sidecar.web.limits import IN_FLIGHT, InFlight
from sidecar.web.observe import OBSERVER, REQUEST_ID_HEADER, Observation, RequestObserver, incoming_or_new_request_id
from sidecar.web.ratelimit import CountedCall, authenticate_counted, client_ip
from sidecar.web.state import METRICS, SERVICES
from sidecar.web.tokens import JWKS_PATH, TOKEN_HEADERS, TOKEN_PATH, TOKEN_SIGNING, exchange, jwks_answer

if TYPE_CHECKING:
    from aiohttp.web_protocol import RequestHandler


@dataclass(frozen=True, slots=True)
class FastLaneOptions:
    enabled: bool
    #: the time a client has to send a request body (``SIDECAR_LIMITS__BODY_TIMEOUT_S``)
    body_timeout_s: float


FAST_LANE = web.AppKey("fast_lane", FastLaneOptions)

#: requests parsed ahead of their answers before the connection stops reading
MAX_QUEUED = 8
_REQUEST_ID = REQUEST_ID_HEADER.lower()
_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus}
_CLOSE = "Connection: close\r\n"


class LaneHeaders(dict[str, list[bytes]]):
    """A request's header fields by lower-case name (``HeaderLookup``); values are decoded as
    aiohttp decodes them, when asked for: most never are."""

    __slots__ = ()

    def first(self, name: str) -> str | None:
        values = dict.get(self, name.lower())
        return None if values is None else values[0].decode("utf-8", "surrogateescape")

    def getall(self, key: str, default: list[str], /) -> list[str]:
        values = dict.get(self, key.lower())
        if values is None:
            return default
        return [value.decode("utf-8", "surrogateescape") for value in values]


#: a 200's body (the route names its header fields); raises ``SidecarError`` for an error answer
LaneHandler = Callable[["LaneRequest", Observation], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class LaneRoute:
    method: str
    path: str
    handler: LaneHandler
    #: a 200's header fields besides the framing ones (and the handler's ``request.extra``)
    headers: tuple[tuple[str, str], ...]
    #: the largest body taken here; a larger one goes to aiohttp (which refuses it as the route does)
    max_body: int = 0
    #: one of ``cors.BROWSER_ROUTES``: a request from a page (``Origin``) goes to aiohttp, which
    #: decides on CORS; every answer here carries ``Vary: Origin``, as aiohttp's do
    browser: bool = False
    #: its answers come out of a batch together (``TurnBatch``): written together after it
    gathered: bool = False


@dataclass(slots=True)
class LaneRequest:
    route: LaneRoute
    headers: LaneHeaders
    body: bytes
    keep_alive: bool
    #: counted in flight since its headers arrived (a request with a body, as aiohttp counts it)
    admitted: bool = False
    #: the client's address (aiohttp's ``request.remote``)
    peer: str | None = None
    #: header fields the handler adds to its answer, error or not (the ``RateLimit-*`` ones)
    extra: tuple[tuple[str, str], ...] = ()


_JSON = (("Content-Type", "application/json"),)
_TOKEN = (*TOKEN_HEADERS, ("Content-Type", "application/json; charset=utf-8"))
_VARY = ("Vary", "Origin")
#: the header lines of the lane's constant header sets, formatted once
_LINES: dict[tuple[tuple[str, str], ...], str] = {
    fields: "".join(f"{name}: {value}\r\n" for name, value in fields) for fields in (_JSON, _TOKEN)
}


def routes_for(app: web.Application) -> dict[tuple[bytes, bytes], LaneRoute]:
    """The lane's routes, bound to the started app's services."""
    hook = app[HASURA_WEBHOOK]
    services = app[SERVICES]
    metrics = app[METRICS]
    ring = services.signing_keys
    signing = app[TOKEN_SIGNING]

    def webhook_get(request: LaneRequest, observation: Observation) -> Awaitable[bytes]:
        return hook.answer_get(request.headers, observation)

    def webhook_post(request: LaneRequest, observation: Observation) -> Awaitable[bytes]:
        return hook.answer_post(request.body, observation)

    async def jwks(request: LaneRequest, observation: Observation) -> bytes:
        body, cache_control = jwks_answer(ring)
        request.extra = (("Cache-Control", cache_control),)
        return body

    async def token(request: LaneRequest, observation: Observation) -> bytes:
        """``POST /v1/auth/token`` without a body (the key's own role and scopes) and not from a
        page (no ``Origin``, so ``check_origin`` has nothing to refuse)."""
        call = CountedCall()

        def client(trusted_hops: int) -> str:
            return client_ip(request.headers.first("x-forwarded-for") or "", request.peer, trusted_hops)

        try:
            credential = bearer_credential(request.headers.first("authorization"))
            principal = await authenticate_counted(services, metrics, credential, client, call)
            observation.principal = principal
            text = await exchange(services, signing, principal)
        finally:
            request.extra = call.headers()
        return text.encode()

    routes = (
        LaneRoute("GET", WEBHOOK_PATH, webhook_get, _JSON),
        LaneRoute("POST", WEBHOOK_PATH, webhook_post, _JSON, max_body=hook.max_body_bytes),
        LaneRoute("GET", JWKS_PATH, jwks, _JSON),
        LaneRoute("POST", TOKEN_PATH, token, _TOKEN, browser=True, gathered=True),
    )
    return {(r.method.encode(), r.path.encode()): r for r in routes}


class HttpDate:
    """The ``Date`` and ``Server`` header fields (aiohttp's), formatted once a second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def fields(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
            self._text = f"Date: {date}\r\nServer: {SERVER_SOFTWARE}\r\n"
        return self._text


class Lane:
    """What every connection of one server shares: the routes, the bounds, the observer."""

    def __init__(
        self,
        routes: dict[tuple[bytes, bytes], LaneRoute],
        *,
        observer: RequestObserver,
        in_flight: InFlight,
        make_handler: Callable[[], RequestHandler],
        keepalive_timeout: float,
        body_timeout: float,
        max_line_size: int,
        max_field_size: int,
        max_headers: int,
    ) -> None:
        self.routes = routes
        self.observer = observer
        self.in_flight = in_flight
        self.make_handler = make_handler
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.max_line_size = max_line_size
        self.max_field_size = max_field_size
        self.max_headers = max_headers
        #: the most a request line and its header fields can take within the bounds above
        self.max_head_bytes = max_line_size + max_headers * (2 * max_field_size + 4)
        self._date = HttpDate()
        #: the connections with answers to write once this loop turn's callbacks have run
        self._unsent: list[FastLaneProtocol] = []

    def send_soon(self, connection: FastLaneProtocol, loop: asyncio.AbstractEventLoop) -> None:
        """Have ``connection.flush()`` called with the others' at the start of the next loop turn."""
        if not self._unsent:
            loop.call_soon(self._send_all)
        self._unsent.append(connection)

    def _send_all(self) -> None:
        connections, self._unsent = self._unsent, []
        for connection in connections:
            connection.flush()

    async def serve(self, request: LaneRequest) -> bytes:
        """The whole response to ``request``, counted and logged."""
        started = time.perf_counter()
        route = request.route
        observation = Observation(incoming_or_new_request_id(request.headers.first(_REQUEST_ID)))
        refusal = None if request.admitted else self.in_flight.enter()
        if refusal is not None:
            observation.reason = refusal.reason
            response = self._error(error_response(refusal), observation, request)
            self.observer.finish(observation, route.method, route.path, refusal.status, time.perf_counter() - started)
            return response
        status = 200
        try:
            body = await route.handler(request, observation)
        except SidecarError as exc:
            observation.reason = exc.reason
            failed = failed_response(exc, route.path)
            status = failed.status
            response = self._error(failed, observation, request)
        except Exception:
            failed = unhandled_response(route.method, route.path)
            status = failed.status
            response = self._error(failed, observation, request)
        else:
            fields = route.headers + _prepare_fields(request, names_its_standing=False)
            response = self.head(200, fields, observation.request_id, len(body), request.keep_alive) + body
        finally:
            self.in_flight.leave()
        self.observer.finish(observation, route.method, route.path, status, time.perf_counter() - started)
        return response

    def timed_out(self, route: LaneRoute, headers: LaneHeaders) -> bytes:
        """The 408 for a body that did not arrive in time (the connection closes after it)."""
        started = time.perf_counter()
        error = RequestTimeout(f"the request body did not arrive within {self.body_timeout:g} s")
        observation = Observation(incoming_or_new_request_id(headers.first(_REQUEST_ID)))
        observation.reason = error.reason
        response = self._error(error_response(error), observation, None)
        self.observer.finish(observation, route.method, route.path, error.status, time.perf_counter() - started)
        return response

    def _error(self, response: web.Response, observation: Observation, request: LaneRequest | None) -> bytes:
        """An error answer (``error_response``'s) with what ``on_response_prepare`` adds to it."""
        body = response.body
        assert isinstance(body, bytes)  # error_response's are JSON bytes
        headers = response.headers
        close = request is None or not request.keep_alive or headers.get("Connection") == "close"
        fields = tuple((name, value) for name, value in headers.items() if name != "Connection")
        if request is not None:
            fields += _prepare_fields(request, names_its_standing="RateLimit-Limit" in headers)  # a 429 does
        return self.head(response.status, fields, observation.request_id, len(body), not close) + body

    def head(
        self, status: int, fields: tuple[tuple[str, str], ...], request_id: str, length: int, keep_alive: bool
    ) -> bytes:
        """The status line and header fields (the request id was checked: no CR or LF in it)."""
        lines = _LINES.get(fields) or "".join(f"{name}: {value}\r\n" for name, value in fields)
        return (
            f"{_STATUS_LINES[status]}{lines}{REQUEST_ID_HEADER}: {request_id}\r\nContent-Length: {length}\r\n"
            f"{self._date.fields()}{'' if keep_alive else _CLOSE}\r\n"
        ).encode("latin-1")


def _prepare_fields(request: LaneRequest, *, names_its_standing: bool) -> tuple[tuple[str, str], ...]:
    """What ``on_response_prepare`` adds to an answer (``sidecar.app._response_headers``): the
    call's ``RateLimit-*`` standing, unless the answer names its own, and ``Vary: Origin`` on a
    browser route."""
    fields = () if names_its_standing else request.extra
    return (*fields, _VARY) if request.route.browser else fields


class _HandOver(Exception):
    """Raised from a parser callback: this request is aiohttp's."""


def _content_length(headers: LaneHeaders) -> int:
    value = headers.first("content-length")
    return 0 if value is None else int(value)  # llhttp has checked it is one decimal number


class FastLaneProtocol(asyncio.Protocol):
    """One connection: lane requests answered in order, until one is aiohttp's (see the module doc).

    It stands in ``web.Server``'s connection list as aiohttp's ``RequestHandler`` does, so the
    server's shutdown closes it (``close``) and waits for its answers (``shutdown``).
    """

    _task_handler: asyncio.Task[None] | None = None  # web.Server.connection_lost looks for it

    def __init__(self, server: web.Server, lane: Lane, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._lane = lane
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._buffer = bytearray()  # from the first byte of the request being parsed
        self._queue: deque[LaneRequest] = deque()
        # one task answers the connection's requests in order, waiting on ``_wakeup`` between them
        # (a task per request costs a task's creation and its registration, each time)
        self._worker: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._busy = False  # answering a request (or about to)
        self._handover: bytearray | None = None  # set: the connection goes to aiohttp when idle
        self._closing = False  # no more requests: close once the queue is answered
        self._write_paused = False
        self._read_paused = False
        self._unsent: list[bytes] | None = None  # answers the lane writes soon (``Lane.send_soon``)
        self._last_active = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        # the request being parsed
        self._url = b""
        self._headers = LaneHeaders()
        self._header_count = 0
        self._long = False
        self._body: bytes | bytearray = b""
        self._route: LaneRoute | None = None
        self._body_since: float | None = None
        self._admitted = False

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)  # uvloop's is one by duck type
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        tcp_keepalive(transport)
        self._server.connection_made(self, transport)  # type: ignore[arg-type]  # a RequestHandler by duck type
        self._arm(self._last_active + self._lane.keepalive_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._server.connection_lost(self, exc)  # type: ignore[arg-type]
        self._disarm()
        self._transport = None
        self._wake()  # an idle worker ends
        self._release_partial()
        for request in self._queue:
            if request.admitted:
                self._lane.in_flight.leave()
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        if self._handover is not None:
            self._handover += data
            return
        if self._closing:
            return
        buffer = self._buffer
        buffer += data
        lane = self._lane
        # no field is longer than the bytes that hold it: most requests need no check per field
        self._long = long = len(buffer) > lane.max_field_size
        if long and self._route is None and self._head_too_long(buffer):
            self._give_to_aiohttp()  # whose parser refuses it, as it would have from its first bytes
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            # a request for aiohttp, or one llhttp refuses: aiohttp parses it again and answers
            self._release_partial()
            self._give_to_aiohttp()

    def _head_too_long(self, buffer: bytearray) -> bool:
        """Whether the request line and header fields being received already exceed the bounds.

        httptools hands a field over only once its line is complete, so a line that never ends
        would otherwise be buffered without limit (aiohttp's parser stops it at the bound).
        """
        lane = self._lane
        unfinished_line = len(buffer) - buffer.rfind(b"\n") - 1
        return unfinished_line > lane.max_line_size + lane.max_field_size or len(buffer) > lane.max_head_bytes

    def _give_to_aiohttp(self) -> None:
        """From the request being parsed on, the connection is aiohttp's: now, or once the
        requests before it are answered."""
        self._handover = self._buffer
        self._update_reading()
        if not self._busy:
            self._hand_over()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # --- web.Server's connection interface

    def close(self) -> None:
        """Stop taking requests; close once the answers in progress are written."""
        self._closing = True
        if not self._busy and self._transport is not None:
            self.flush()
            self._transport.close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 - web.Server's interface
        self.close()
        worker = self._worker
        if worker is not None and self._busy:
            await asyncio.wait({worker}, timeout=timeout)
        if worker is not None:
            worker.cancel()
        if self._transport is not None:
            self.flush()
            self._transport.close()

    # --- httptools' callbacks, as it parses (any exception hands the connection over)

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = LaneHeaders()
        self._header_count = 0
        self._body = b""
        self._route = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._lane.max_line_size:
            raise _HandOver

    def on_header(self, name: bytes, value: bytes) -> None:
        lane = self._lane
        self._header_count += 1
        if self._header_count > lane.max_headers or (
            self._long and (len(name) > lane.max_field_size or len(value) > lane.max_field_size)
        ):
            raise _HandOver
        self._headers.setdefault(name.decode("latin-1").lower(), []).append(value)

    def on_headers_complete(self) -> None:
        parser, headers = self._parser, self._headers
        route = self._lane.routes.get((parser.get_method(), self._url.partition(b"?")[0]))
        if (
            route is None
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or "transfer-encoding" in headers
            or "expect" in headers
            or (route.browser and "origin" in headers)
            or _content_length(headers) > route.max_body
        ):
            raise _HandOver
        self._route = route
        if route.max_body:  # a body may follow: in flight from now on, with the body timeout to arrive
            in_flight = self._lane.in_flight
            if in_flight.full:
                raise _HandOver  # aiohttp refuses it as the bound says
            in_flight.enter()
            self._admitted = True
            self._body_since = since = self._loop.time()
            deadline = since + self._lane.body_timeout
            if self._timer is None or self._timer.when() > deadline:
                self._arm(deadline)

    def on_body(self, body: bytes) -> None:
        # one piece, usually: kept without a copy; from the second on, grown in place, so that a
        # body sent in many tiny pieces does not cost its length squared
        if not self._body:
            self._body = body
        elif isinstance(self._body, bytes):
            self._body = bytearray(self._body) + body
        else:
            self._body += body

    def on_message_complete(self) -> None:
        route = self._route
        if route is None:
            raise _HandOver
        body = bytes(self._body)  # the same object when it came in one piece
        self._consume(len(body))
        self._body_since = None
        keep_alive = bool(self._parser.should_keep_alive())
        self._queue.append(LaneRequest(route, self._headers, body, keep_alive, self._admitted, self._peer))
        self._admitted = False
        self._route = None  # the next request's header fields are bounded from its first byte
        if not keep_alive:
            self._closing = True  # aiohttp too reads nothing after a request that closes
        self._busy = True
        if self._worker is None:
            self._worker = self._loop.create_task(self._answer_queued())
        else:
            self._wake()
        self._update_reading()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _release_partial(self) -> None:
        """The request being parsed will not be answered here: it is no longer in flight."""
        if self._admitted:
            self._admitted = False
            self._lane.in_flight.leave()

    def _consume(self, body_length: int) -> None:
        """Drop the message just parsed from the buffer: its header block ends at the first empty
        line (llhttp skips empty lines before a request line, and refuses line ends other than
        CRLF and folded lines: a test holds it to that), its body is ``body_length`` bytes. If
        the bytes say otherwise, the request is aiohttp's."""
        buffer = self._buffer
        start = 0
        while buffer[start] in b"\r\n":
            start += 1
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            raise _HandOver
        end += 4
        total = end + body_length
        if buffer[end:total] != self._body:
            raise _HandOver
        del buffer[:total]

    # --- answering

    async def _answer_queued(self) -> None:
        """Answer the queue in order; between requests, wait for the next; end with the connection."""
        try:
            while True:
                while self._queue and self._transport is not None:
                    request = self._queue.popleft()
                    self._update_reading()
                    response = await self._lane.serve(request)
                    transport = self._transport
                    if transport is None or transport.is_closing():
                        return
                    if request.route.gathered:
                        self._send(response)
                    else:
                        self._write(response)
                    if not request.keep_alive:
                        self.flush()
                        transport.close()
                        return
                self._busy = False
                self._last_active = self._loop.time()
                if self._transport is None:
                    return
                if self._handover is not None and not self._closing:
                    self._hand_over()
                    return
                if self._closing:
                    self.flush()
                    self._transport.close()
                    return
                self._update_reading()
                self._wakeup = self._loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
        finally:
            self._busy = False
            self._worker = None

    def _write(self, response: bytes) -> None:
        """Write ``response`` now (after any the connection still holds)."""
        if self._unsent is None:
            assert self._transport is not None  # checked by the caller
            self._transport.write(response)
        else:
            self._unsent.append(response)
            self.flush()

    def _send(self, response: bytes) -> None:
        """Write ``response`` together with the other answers of this loop turn."""
        unsent = self._unsent
        if unsent is None:
            self._unsent = [response]
            self._lane.send_soon(self, self._loop)
        else:
            unsent.append(response)

    def flush(self) -> None:
        """Write the answers ``_send`` holds, now: at the turn's end, and before the connection
        closes or goes to aiohttp (whose answers come after the lane's)."""
        unsent = self._unsent
        if unsent is None:
            return
        self._unsent = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))

    def _hand_over(self) -> None:
        """From here on the connection is aiohttp's, beginning with the bytes not yet answered."""
        self.flush()
        transport, data = self._transport, self._handover
        assert transport is not None
        assert data is not None
        self._disarm()
        self._server.connection_lost(self, None)  # type: ignore[arg-type]
        self._transport = None
        self._wake()  # an idle worker ends
        handler = self._lane.make_handler()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._read_paused:
            transport.resume_reading()
        if data:
            handler.data_received(bytes(data))

    def _update_reading(self) -> None:
        pause = self._write_paused or len(self._queue) >= MAX_QUEUED or self._handover is not None
        if pause is self._read_paused:  # the usual case: reading, and nothing says stop
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._read_paused = pause
        if pause:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # --- timeouts: one timer, re-armed when it fires

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or self._handover is not None:
            return
        now = self._loop.time()
        if self._busy:  # answering: aiohttp does not time handlers out either
            self._arm(now + self._lane.keepalive_timeout)
            return
        if self._body_since is not None:
            deadline = self._body_since + self._lane.body_timeout
            if now >= deadline:
                route = self._route
                assert route is not None  # a body is awaited only once its route is known
                self._closing = True
                self._release_partial()
                self.flush()
                transport.write(self._lane.timed_out(route, self._headers))
                transport.close()
                return
        else:
            deadline = self._last_active + self._lane.keepalive_timeout
            if now >= deadline:
                self._closing = True
                self.flush()
                transport.close()
                return
        self._arm(deadline)


def lane_for(
    app: web.Application, server: web.Server, make_handler: Callable[[], RequestHandler], **server_options: Any
) -> Lane | None:
    """The fast lane for the started ``app``, or ``None`` when it is switched off or not built
    (an app assembled without ``sidecar.app.create_app``)."""
    options = app.get(FAST_LANE)
    if options is None or not options.enabled or HASURA_WEBHOOK not in app or SERVICES not in app:
        return None
    return Lane(
        routes_for(app),
        observer=app[OBSERVER],
        in_flight=app[IN_FLIGHT],
        make_handler=make_handler,
        keepalive_timeout=float(server_options.get("keepalive_timeout", 3630)),
        body_timeout=options.body_timeout_s,
        max_line_size=int(server_options.get("max_line_size", 8190)),
        max_field_size=int(server_options.get("max_field_size", 8190)),
        max_headers=int(server_options.get("max_headers", 128)),
    )
