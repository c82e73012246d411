"""Request limits over real sockets: header sizes, slow headers and bodies, requests in flight, body sizes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Bootstrap, bearer


async def healthy(server: TestServer) -> bool:
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/healthz")) as resp:
        return resp.status == 200


# --- header sizes and malformed requests: refused before any middleware, still in JSON --------

SECRET = "sk_live_" + "s3cr3t" * 8


def assert_refused(status: int, headers: dict[str, str], body: bytes, expected: int, message: str) -> None:
    assert status == expected
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers.get("connection", "").lower() == "close"
    assert json.loads(body) == {"error": "INVALID_REQUEST", "message": message}


async def test_an_oversized_header_is_a_json_431_that_quotes_nothing(
    serve: Any, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(limits={"max_field_bytes": 2048})
    raw = await connect(server)
    huge = f"Bearer {SECRET}".encode() + b"a" * 4096
    await raw.send(b"GET /v1/auth/validate HTTP/1.1\r\nHost: x\r\nAuthorization: " + huge + b"\r\n\r\n")
    status, headers, body = await raw.response()
    assert_refused(status, headers, body, 431, "a request header field is longer than 2048 bytes")
    assert await raw.closed_within(2.0)
    assert SECRET not in caplog.text  # aiohttp's own handler logs the first 100 bytes of the header
    assert await healthy(server)


async def test_an_oversized_header_name_is_a_431_too(serve: Any, connect: Any) -> None:
    server = await serve(limits={"max_field_bytes": 2048, "max_line_bytes": 2048})
    raw = await connect(server)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X" * 4096 + b": y\r\n\r\n")
    assert_refused(*await raw.response(), 431, "a request header field is longer than 2048 bytes")


async def test_too_many_headers_are_a_json_431(serve: Any, connect: Any) -> None:
    server = await serve(limits={"max_headers": 16})
    raw = await connect(server)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(40)) + b"\r\n")
    assert_refused(*await raw.response(), 431, "more than 16 request header fields")
    assert await healthy(server)


@pytest.mark.parametrize("field_bytes", [8190, 1024], ids=["field bound larger", "both bounds equal"])
async def test_a_too_long_url_is_a_json_414(serve: Any, connect: Any, field_bytes: int) -> None:
    server = await serve(limits={"max_line_bytes": 1024, "max_field_bytes": field_bytes})
    raw = await connect(server)
    await raw.send(b"GET /healthz?" + b"q" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_refused(*await raw.response(), 414, "the request line (method and URL) is longer than 1024 bytes")
    assert await healthy(server)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n",  # a space in a header name
        b"G\x01T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",  # not a method
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",  # not a version
        b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ],
    ids=["header syntax", "method", "version", "two content lengths"],
)
async def test_a_malformed_request_is_a_json_400(serve: Any, connect: Any, request_bytes: bytes) -> None:
    server = await serve()
    raw = await connect(server)
    await raw.send(request_bytes)
    assert_refused(*await raw.response(), 400, "the request is not well-formed HTTP/1.1")
    assert await healthy(server)


async def test_a_header_within_the_bound_passes(serve: Any, connect: Any) -> None:
    server = await serve(limits={"max_field_bytes": 2048})
    raw = await connect(server)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1900 + b"\r\n\r\n")
    assert (await raw.response())[0] == 200


async def test_an_error_escaping_every_middleware_is_a_json_500(serve: Any, connect: Any) -> None:
    @web.middleware
    async def broken(request: web.Request, handler: Any) -> web.StreamResponse:
        raise RuntimeError("a bug outside the error middleware")

    server = await serve(before=lambda app: app.middlewares.insert(0, broken))
    raw = await connect(server)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = await raw.response()
    assert status == 500
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"error": "SERVER_ERROR", "message": "internal error; see the server log"}


# --- slow clients ---------------------------------------------------------------------------


async def test_a_client_trickling_its_headers_is_cut_off(serve: Any, connect: Any) -> None:
    server = await serve(limits={"keepalive_timeout_s": 0.6})
    raw = await connect(server)
    started = time.monotonic()
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    cut_off = False
    for i in range(20):  # one header every 0.15 s: never complete, always "active"
        try:
            await raw.send(b"X-Slow-%d: y\r\n" % i)
        except ConnectionError:
            cut_off = True
            break
        if await raw.closed_within(0.15):
            cut_off = True
            break
    assert cut_off, "the server kept a connection whose headers never completed"
    assert time.monotonic() - started < 2.0
    assert await healthy(server)


async def test_an_idle_connection_is_closed(serve: Any, connect: Any) -> None:
    server = await serve(limits={"keepalive_timeout_s": 0.3})
    raw = await connect(server)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await raw.response())[0] == 200
    assert await raw.closed_within(2.0)


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(serve: Any, connect: Any) -> None:
    server = await serve(limits={"body_timeout_s": 0.4})
    raw = await connect(server)
    body = json.dumps({"headers": {}}).encode()
    await raw.send(
        b"POST /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body
    )
    started = time.monotonic()
    status, headers, payload = await raw.response(within_s=3.0)
    assert status == 408
    assert 0.3 < time.monotonic() - started < 2.5
    assert json.loads(payload)["error"] == "REQUEST_TIMEOUT"
    assert headers.get("connection", "").lower() == "close"
    assert await raw.closed_within(2.0)
    assert await healthy(server)


async def test_a_slow_body_that_finishes_in_time_is_served(serve: Any, connect: Any) -> None:
    server = await serve(limits={"body_timeout_s": 2.0})
    raw = await connect(server)
    body = json.dumps({"headers": {}}).encode()
    await raw.send(
        b"POST /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    await asyncio.sleep(0.3)
    await raw.send(body[5:])
    status, _, payload = await raw.response()
    assert status == 200, payload


# --- requests in flight ---------------------------------------------------------------------


async def test_beyond_the_concurrency_bound_a_503_with_retry_after(serve: Any, connect: Any) -> None:
    server = await serve(limits={"max_concurrent_requests": 2, "retry_after_s": 3, "body_timeout_s": 10})
    body = json.dumps({"headers": {}}).encode()
    held = []
    for _ in range(2):  # two webhook calls in flight, each waiting for the rest of its body
        raw = await connect(server)
        await raw.send(
            b"POST /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:3]
        )
        held.append(raw)
    await asyncio.sleep(0.2)

    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url("/v1/hasura/webhook")) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "3"
            assert await resp.json() == {
                "error": "SERVICE_UNAVAILABLE",
                "message": "too many requests in flight; retry later",
            }
        async with session.get(server.make_url("/healthz")) as probe:
            assert probe.status == 200  # probes are not counted
        for raw in held:
            await raw.send(body[3:])
            assert (await raw.response())[0] == 200
        async with session.get(server.make_url("/v1/hasura/webhook")) as resp:
            assert resp.status == 200
        async with session.get(server.make_url("/metrics")) as scrape:
            text = await scrape.text()
    assert "sidecar_overload_rejections_total 1.0" in text
    assert 'route="/v1/hasura/webhook",status="503"' in text


# --- body sizes -----------------------------------------------------------------------------


def content_type(path: str) -> str:
    """Forms for the pages and OAuth endpoints (they read nothing else), JSON for the API."""
    return "application/x-www-form-urlencoded" if path.startswith(("/dashboard", "/oauth/")) else "application/json"


async def test_every_route_that_takes_a_body_refuses_one_past_its_limit(serve: Any, bootstrap: Bootstrap) -> None:
    settings_limit = 64 * 1024
    server = await serve(max_body_bytes=settings_limit)
    app = server.app
    assert app is not None
    webhook_limit = 1024 * 1024  # SIDECAR_HASURA_WEBHOOK__MAX_BODY_BYTES, the largest limit of any route
    oversized = b'{"a": "' + b"x" * webhook_limit + b'"}'
    routes = sorted(
        {
            (route.method, route.resource.canonical.replace("{", "").replace("}", ""))
            for route in app.router.routes()
            if route.method in ("POST", "PUT", "PATCH", "DELETE") and route.resource is not None
        }
    )
    assert len(routes) > 10
    async with aiohttp.ClientSession() as session:
        for method, path in routes:
            async with session.request(
                method,
                server.make_url(path),
                data=oversized,
                allow_redirects=False,
                headers={**bearer(bootstrap.key), "Content-Type": content_type(path)},
            ) as resp:
                assert 300 <= resp.status < 500, f"{method} {path}: {resp.status} {await resp.text()}"
                if resp.status >= 400 and path != "/oauth/authorize":  # the consent page answers a page
                    assert resp.content_type == "application/json", f"{method} {path}"
                    assert "error" in await resp.json()
    assert await healthy(server)
