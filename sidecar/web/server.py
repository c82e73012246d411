"""Serving the app so that what aiohttp refuses before any middleware runs is JSON too.

aiohttp's HTTP parser refuses a request whose request line, header fields or header count exceed
the bounds of ``app.server_options`` (``SIDECAR_LIMITS__*``), or that is not well-formed HTTP,
before the application sees it; ``RequestHandler.handle_error`` then writes a plain-text 400 whose
body (and its log line) quote up to 100 bytes of the offending header, an API key perhaps.
aiohttp offers no hook for that answer (aio-libs/aiohttp#3287), so ``JsonErrorRunner``, an
``AppRunner``, serves connections with a ``RequestHandler`` whose ``handle_error`` answers in the
contract's shape, ``{"error": "INVALID_REQUEST", "message": …}``, quoting nothing the client sent:

- 414 when the request line (method and URL) is longer than ``max_line_size``;
- 431 (RFC 6585) when a header field is longer than ``max_field_size``, or there are more than
  ``max_headers`` of them;
- 400 for anything else that is not HTTP (a bad method, version or header syntax, …);
- 500 ``SERVER_ERROR`` when an exception escapes the middlewares (the error middleware catches
  everything raised inside it, so this is a bug).

The connection closes after each of these, as aiohttp does. ``serve`` runs the app with this
runner as ``web.run_app`` would (``sidecar serve``); tests start ``JsonErrorRunner`` directly.

Each connection starts on the fast lane (``sidecar.web.fast_lane``) when the app has one, and
becomes a ``JsonErrorRequestHandler`` at the first request the lane does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sidecar.web.fast_lane import FastLaneProtocol, Lane, lane_for

log = logging.getLogger("sidecar.web")

#: aiohttp's text for more header fields than ``max_headers`` (both of its parsers)
_TOO_MANY_HEADERS = "Too many headers"


def _raised_in(exc: BaseException, function: str) -> bool:
    """Whether ``function`` (for the C parser, e.g. ``aiohttp._http_parser.cb_on_url``) raised ``exc``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name.endswith(function):
            return True
        tb = tb.tb_next
    return False


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering the errors it handles itself in JSON."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: the connection is broken
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if isinstance(exc, HttpProcessingError):
            status, reason, text = self._refusal(exc)
            log.info("refused a request before routing: %s (%d) from %s", reason, status, request.remote)
            body = {"error": "INVALID_REQUEST", "message": text}
        else:
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
            text = "the request timed out" if status == 504 else "internal error; see the server log"
            body = {"error": "SERVER_ERROR", "message": text}
        response = web.json_response(body, status=status, headers={"Connection": "close"})
        response.force_close()
        return response

    def _refusal(self, exc: HttpProcessingError) -> tuple[int, str, str]:
        """``(status, reason, message)`` for what the parser refused; the message quotes no input."""
        line, field = self.max_line_size, self.max_field_size
        if isinstance(exc, LineTooLong):
            in_url = _raised_in(exc, "cb_on_url")  # the C parser says where
            in_field = _raised_in(exc, "cb_on_header_field") or _raised_in(exc, "cb_on_header_value")
            if not (in_url or in_field):  # the pure-Python one: only the limit it names tells
                limit = exc.args[1] if len(exc.args) > 1 else None
                in_url, in_field = limit == line != field, limit == field != line
            if in_url:
                return 414, "request_line_too_long", f"the request line (method and URL) is longer than {line} bytes"
            if in_field:
                return 431, "header_too_large", f"a request header field is longer than {field} bytes"
            return 431, "header_too_large", f"the request line or a header field is longer than {field} bytes"
        if isinstance(exc, BadHttpMessage) and exc.message.startswith(_TOO_MANY_HEADERS):
            return 431, "too_many_headers", f"more than {self.max_headers} request header fields"
        return 400, "malformed_request", "the request is not well-formed HTTP/1.1"


class JsonErrorServer(web.Server):
    """``web.Server`` whose connections are ``JsonErrorRequestHandler``s, each behind the fast
    lane (``sidecar.web.fast_lane``) when the app has one."""

    lane: Lane | None = None

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]  # a RequestHandler, or the lane before one
        if self.lane is not None:
            return FastLaneProtocol(self, self.lane, self._loop)
        return self.request_handler_for_connection()

    def request_handler_for_connection(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """``web.AppRunner`` serving the app with ``JsonErrorServer``; otherwise the same."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the app, as AppRunner does
        server = JsonErrorServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
        server.lane = lane_for(self.app, server, server.request_handler_for_connection, **made._kwargs)
        return server


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    on_listening: Callable[[str], None],
    **server_options: Any,
) -> None:
    """Run ``app`` until SIGINT or SIGTERM, as ``web.run_app(app, access_log=None, …)`` does.

    ``server_options`` go to aiohttp's server (``app.server_options``). On a signal the server
    stops listening and lets requests in flight finish for up to ``shutdown_timeout`` seconds.
    Exceptions while starting (the app's ``cleanup_ctx``, binding the port) propagate.
    """
    loop = asyncio.new_event_loop()
    runner = JsonErrorRunner(
        app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout, **server_options
    )

    async def listen() -> None:
        site = web.TCPSite(runner, host, port)
        await site.start()
        on_listening(site.name)

    asyncio.set_event_loop(loop)
    try:
        try:
            loop.run_until_complete(runner.setup())  # the app's start-up
        except (web.GracefulExit, KeyboardInterrupt):
            return
        try:
            loop.run_until_complete(listen())
            loop.run_forever()
        except (web.GracefulExit, KeyboardInterrupt):
            pass
        finally:
            loop.run_until_complete(runner.cleanup())
    finally:
        _cancel_all(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
