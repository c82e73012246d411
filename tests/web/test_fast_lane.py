"""The fast lane (``sidecar/web/fast_lane.py``) over real sockets: the answers aiohttp would give,
and every request it does not take handed to aiohttp from that request's first byte."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aiohttp.web_protocol import RequestHandler

from sidecar.web.fast_lane import FastLaneProtocol
from sidecar.web.tokens import TOKEN_SIGNING
from tests.conftest import Bootstrap
from tests.web.conftest import Raw

Answer = tuple[int, dict[str, str], bytes]


def connection_types(server: TestServer) -> list[type]:
    assert server.runner is not None
    assert server.runner.server is not None
    return [type(connection) for connection in server.runner.server.connections]


def aiohttps(server: TestServer) -> bool:
    """Whether the server's one connection is aiohttp's ``RequestHandler``."""
    return [issubclass(t, RequestHandler) for t in connection_types(server)] == [True]


def webhook_get(key: str | None = None, *, extra: bytes = b"") -> bytes:
    auth = b"" if key is None else b"Authorization: Bearer %s\r\n" % key.encode()
    return b"GET /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\n" + auth + extra + b"\r\n"


def webhook_post(body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body
    )


def hasura_body(key: str, **extra: Any) -> bytes:
    return json.dumps({"headers": {"Authorization": f"Bearer {key}", **extra}, "request": {"query": "{ a }"}}).encode()


async def exchange(raw: Raw, request: bytes) -> Answer:
    await raw.send(request)
    return await raw.response()


@pytest.fixture
async def lanes(serve: Any, bootstrap: Bootstrap) -> tuple[TestServer, TestServer]:
    """The same app twice over one store: with the fast lane (the default), and without it."""
    fast = await serve()
    slow = await serve(fast_lane=False)
    assert slow.runner is not None
    assert getattr(slow.runner.server, "lane", None) is None
    return fast, slow


def comparable(answer: Answer) -> Answer:
    status, headers, body = answer
    return status, {k: v for k, v in headers.items() if k not in ("date", "x-request-id")}, body


@pytest.mark.parametrize(
    "case",
    [
        "GET with a key",
        "GET as another role",
        "GET with a role it lacks",
        "GET anonymous",
        "GET with a bad key",
        "GET with a query string",
        "POST",
        "POST not JSON",
        "POST without headers",
        "JWKS",
    ],
)
async def test_the_lane_answers_byte_for_byte_as_aiohttp(
    lanes: tuple[TestServer, TestServer], connect: Any, bootstrap: Bootstrap, case: str
) -> None:
    key = bootstrap.key
    request = {
        "GET with a key": webhook_get(key),
        "GET as another role": webhook_get(key, extra=b"X-Hasura-Role: viewer\r\n"),
        "GET with a role it lacks": webhook_get(key, extra=b"X-Hasura-Role: nobody\r\n"),
        "GET anonymous": webhook_get(),
        "GET with a bad key": webhook_get("sk_live_" + "x" * 40),
        "GET with a query string": webhook_get(key).replace(b"webhook ", b"webhook?from=hasura "),
        "POST": webhook_post(hasura_body(key)),
        "POST not JSON": webhook_post(b"{not json"),
        "POST without headers": webhook_post(b'{"request": {}}'),
        "JWKS": b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n",
    }[case]
    fast, slow = lanes
    fast_raw, slow_raw = await connect(fast), await connect(slow)
    fast_answer, slow_answer = await exchange(fast_raw, request), await exchange(slow_raw, request)
    assert comparable(fast_answer) == comparable(slow_answer)
    assert fast_answer[1]["x-request-id"] != slow_answer[1]["x-request-id"]
    assert connection_types(fast) == [FastLaneProtocol]  # it was the lane that answered


def token_post(key: str | None, *, extra: bytes = b"") -> bytes:
    auth = b"" if key is None else b"Authorization: Bearer %s\r\n" % key.encode()
    return b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\n" + auth + extra + b"\r\n"


@pytest.mark.parametrize("case", ["a key", "a counted key", "a bad key", "no key", "over the rate limit"])
async def test_the_lanes_token_exchange_answers_as_aiohttp(
    serve: Any, connect: Any, bootstrap: Bootstrap, case: str
) -> None:
    counted = case in ("a counted key", "a bad key", "over the rate limit")
    limits = {"enabled": counted, "by_type": {"secret": {"requests": 2, "per_s": 60}}}
    fast = await serve(rate_limit=limits)
    slow = await serve(rate_limit=limits, fast_lane=False)
    key = {"a bad key": "sk_live_" + "x" * 40, "no key": None}.get(case, bootstrap.key)
    fast_raw, slow_raw = await connect(fast), await connect(slow)
    for _ in range(3 if case == "over the rate limit" else 1):
        fast_answer, slow_answer = await exchange(fast_raw, token_post(key)), await exchange(slow_raw, token_post(key))
        (fast_status, fast_headers, fast_body), (slow_status, slow_headers, slow_body) = (
            comparable(fast_answer),
            comparable(slow_answer),
        )
        assert (fast_status, fast_headers) == (slow_status, slow_headers)
        if fast_status == 200:  # two tokens, never the same bytes: the same claims, the same shape
            fast_json, slow_json = json.loads(fast_body), json.loads(slow_body)
            assert fast_json.keys() == slow_json.keys() == {"access_token", "token_type", "expires_in", "expires_at"}
            assert fast_json["token_type"] == "Bearer"
            assert fast_headers["cache-control"] == "no-store"
        else:
            assert fast_body == slow_body
    assert fast_headers["vary"] == "Origin"
    assert (fast_status, "ratelimit-remaining" in fast_headers) == {
        "a key": (200, False),
        "a counted key": (200, True),
        "a bad key": (401, True),  # counted against the address
        "no key": (401, False),
        "over the rate limit": (429, True),
    }[case]
    assert connection_types(fast) == [FastLaneProtocol]


async def test_a_token_request_from_a_page_or_with_a_body_is_aiohttps(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    server = await serve()
    for extra in (b"Origin: https://shop.example\r\n", b"Content-Type: application/json\r\nContent-Length: 2\r\n"):
        raw = await connect(server)
        request = token_post(bootstrap.key, extra=extra) + (b"{}" if b"Content-Length" in extra else b"")
        status, _, _ = await exchange(raw, request)
        assert status == (401 if b"Origin" in extra else 200)  # a secret key from a browser is refused
        assert any(issubclass(t, RequestHandler) for t in connection_types(server))
        raw.close()
        await asyncio.sleep(0.05)


async def test_a_callers_request_id_comes_back(serve: Any, connect: Any, bootstrap: Bootstrap) -> None:
    server = await serve()
    raw = await connect(server)
    _, headers, _ = await exchange(raw, webhook_get(bootstrap.key, extra=b"X-Request-Id: hasura-req-42\r\n"))
    assert headers["x-request-id"] == "hasura-req-42"


async def test_requests_on_one_connection_are_answered_in_order_across_the_handover(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    server = await serve()
    raw = await connect(server)
    status, _, body = await exchange(raw, webhook_get(bootstrap.key))
    assert (status, json.loads(body)["X-Hasura-Role"]) == (200, "super_admin")
    assert connection_types(server) == [FastLaneProtocol]

    pipelined = (
        webhook_get(bootstrap.key, extra=b"X-Hasura-Role: viewer\r\n")
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        + webhook_get()
        + webhook_post(hasura_body(bootstrap.key))
    )
    await raw.send(pipelined)
    answers = [await raw.response() for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 200]
    assert json.loads(answers[0][2])["X-Hasura-Role"] == "viewer"
    assert json.loads(answers[1][2])["status"] == "ok"
    assert json.loads(answers[2][2])["X-Hasura-Role"] == "anonymous"
    assert json.loads(answers[3][2])["X-Hasura-Role"] == "super_admin"
    assert aiohttps(server)  # from /healthz on, the connection is aiohttp's


async def test_a_body_that_arrives_in_pieces_is_answered(serve: Any, connect: Any, bootstrap: Bootstrap) -> None:
    server = await serve()
    raw = await connect(server)
    request = webhook_post(hasura_body(bootstrap.key, **{"X-Hasura-Role": "viewer"}))
    for piece in (request[:20], request[20:-30], request[-30:-1], request[-1:]):
        await raw.send(piece)
        await asyncio.sleep(0.02)
    status, _, body = await raw.response()
    assert (status, json.loads(body)["X-Hasura-Role"]) == (200, "viewer")
    assert connection_types(server) == [FastLaneProtocol]


async def test_a_chunked_body_goes_to_aiohttp_and_is_answered(serve: Any, connect: Any, bootstrap: Bootstrap) -> None:
    server = await serve()
    raw = await connect(server)
    body = hasura_body(bootstrap.key)
    head = b"POST /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, _, answer = await exchange(raw, head + chunked)
    assert (status, json.loads(answer)["X-Hasura-Role"]) == (200, "super_admin")
    assert aiohttps(server)


async def test_a_body_larger_than_the_webhooks_limit_is_refused_as_aiohttp_refuses_it(serve: Any, connect: Any) -> None:
    server = await serve(hasura_webhook={"max_body_bytes": 2048})
    raw = await connect(server)
    status, _, body = await exchange(raw, webhook_post(b'{"headers": {}, "pad": "' + b"x" * 4096 + b'"}'))
    assert status == 401
    assert json.loads(body)["error"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (webhook_get(extra=b"X-Big: " + b"a" * 4096 + b"\r\n"), 431),
        (webhook_get(extra=b"".join(b"X-%d: y\r\n" % i for i in range(40))), 431),
        (webhook_get().replace(b"webhook ", b"webhook?" + b"q" * 4096 + b" "), 414),
        (b"GET /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET /v1/hasura/webhook HTTP/1.1\r\nHost: x\nAuthorization: Bearer k\r\n\r\n", 400),
        (b"GET /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nX-Hasura-Role: a\r\n b\r\n\r\n", 400),
    ],
    ids=["a header too large", "too many headers", "a URL too long", "not HTTP", "a bare LF", "a folded field"],
)
async def test_what_aiohttp_refuses_it_refuses_on_the_lanes_routes_too(
    serve: Any, connect: Any, request_bytes: bytes, status: int
) -> None:
    server = await serve(limits={"max_field_bytes": 2048, "max_line_bytes": 2048, "max_headers": 16})
    raw = await connect(server)
    got, headers, body = await exchange(raw, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body)["error"] == "INVALID_REQUEST"
    assert await raw.closed_within(2.0)


async def test_http_1_0_and_connection_close_are_answered_then_closed(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    server = await serve()
    for request in (
        webhook_get(bootstrap.key).replace(b"HTTP/1.1", b"HTTP/1.0"),
        webhook_get(bootstrap.key, extra=b"Connection: close\r\n"),
    ):
        raw = await connect(server)
        status, headers, body = await exchange(raw, request)
        assert (status, json.loads(body)["X-Hasura-Role"]) == (200, "super_admin")
        assert await raw.closed_within(2.0)
        if b"Connection: close" in request:
            assert headers["connection"] == "close"


async def test_an_idle_connection_and_one_slow_to_send_its_headers_are_closed(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    server = await serve(limits={"keepalive_timeout_s": 0.4})
    idle = await connect(server)
    assert (await exchange(idle, webhook_get(bootstrap.key)))[0] == 200
    slow = await connect(server)
    await slow.send(webhook_get(bootstrap.key)[:30])
    assert await idle.closed_within(2.0)
    assert await slow.closed_within(2.0)


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_leaves_the_bound(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    server = await serve(limits={"body_timeout_s": 0.3, "max_concurrent_requests": 1})
    raw = await connect(server)
    await raw.send(webhook_post(hasura_body(bootstrap.key))[:-10])
    status, headers, body = await raw.response()
    assert (status, json.loads(body)["error"]) == (408, "REQUEST_TIMEOUT")
    assert headers["connection"] == "close"
    assert await raw.closed_within(2.0)
    again = await connect(server)  # the one place in flight is free again
    assert (await exchange(again, webhook_get(bootstrap.key)))[0] == 200


async def test_a_client_gone_mid_body_leaves_the_bound(serve: Any, connect: Any, bootstrap: Bootstrap) -> None:
    server = await serve(limits={"max_concurrent_requests": 1})
    gone = await connect(server)
    await gone.send(webhook_post(hasura_body(bootstrap.key))[:-10])
    await asyncio.sleep(0.05)
    gone.close()
    await asyncio.sleep(0.1)
    raw = await connect(server)
    assert (await exchange(raw, webhook_post(hasura_body(bootstrap.key))))[0] == 200


async def test_stopping_the_server_closes_its_lane_connections(serve: Any, connect: Any, bootstrap: Bootstrap) -> None:
    server = await serve()
    raw = await connect(server)
    assert (await exchange(raw, webhook_get(bootstrap.key)))[0] == 200
    assert (await exchange(raw, webhook_get(bootstrap.key)))[0] == 200  # the same worker, woken again
    assert len(lane_workers()) == 1
    await server.close()
    assert await raw.closed_within(2.0)
    await asyncio.sleep(0)
    assert lane_workers() == []  # the connection's worker ended with it


def lane_workers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "FastLaneProtocol._answer_queued" in repr(t.get_coro())]


async def test_switched_off_every_connection_is_aiohttps(serve: Any, connect: Any, bootstrap: Bootstrap) -> None:
    server = await serve(fast_lane=False)
    raw = await connect(server)
    assert (await exchange(raw, webhook_get(bootstrap.key)))[0] == 200
    assert aiohttps(server)


@pytest.mark.parametrize(
    ("start", "status"),
    [
        (b"GET /v1/hasura/webhook HTTP/1.1\r\nHost: x\r\nX-Big: ", 431),
        (b"GET /v1/hasura/webhook?q=", 414),
    ],
    ids=["a field", "a request line"],
)
async def test_a_line_that_never_ends_is_refused_before_it_is_buffered(
    serve: Any, connect: Any, start: bytes, status: int
) -> None:
    server = await serve(limits={"max_field_bytes": 2048, "max_line_bytes": 2048})
    raw = await connect(server)
    await raw.send(start)
    for _ in range(8):  # 64 KiB and no line end: aiohttp stops it at 2 KiB, the lane must too
        await raw.send(b"a" * 8192)
    got, _, body = await raw.response()
    assert got == status
    assert json.loads(body)["error"] == "INVALID_REQUEST"


async def test_on_either_path_a_webhook_call_shortens_the_signing_slices_and_health_checks_do_not(
    lanes: tuple[TestServer, TestServer], connect: Any, bootstrap: Bootstrap
) -> None:
    """Exchanges sign in long runs until a request of another route is answered beside them."""
    for server in lanes:
        signing = server.app[TOKEN_SIGNING]
        raw = await connect(server)
        for request in (token_post(bootstrap.key), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"):
            status, _, _ = await exchange(raw, request)
            assert status == 200
        assert not signing.shared
        status, _, _ = await exchange(raw, webhook_get(bootstrap.key))
        assert status == 200
        assert signing.shared


class Recorded:
    """A transport, or the lane's observer, that notes each write (each answer) in ``events``."""

    def __init__(self, wrapped: Any, events: list[str]) -> None:
        self._wrapped = wrapped
        self._events = events

    def write(self, data: bytes) -> None:
        self._events.append("write")
        self._wrapped.write(data)

    def finish(self, *args: Any) -> None:
        self._events.append("answer")
        self._wrapped.finish(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


async def recorded_connections(
    server: TestServer, connect: Any, warm_up: bytes, count: int
) -> tuple[list[Raw], list[str]]:
    """``count`` lane connections, each past one ``warm_up`` request (the key is cached), whose
    writes and answers are noted from then on, in order, in the list returned."""
    raws = [await connect(server) for _ in range(count)]
    for raw in raws:
        assert (await exchange(raw, warm_up))[0] == 200
    assert server.runner is not None
    lane_server = server.runner.server
    assert lane_server is not None
    events: list[str] = []
    lane = lane_server.lane  # type: ignore[attr-defined]
    lane.observer = Recorded(lane.observer, events)
    for connection in lane_server.connections:
        assert isinstance(connection, FastLaneProtocol)
        connection._transport = Recorded(connection._transport, events)  # type: ignore[assignment]
    return raws, events


async def test_token_answers_of_one_batch_of_signatures_are_written_together_after_it(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    """A client woken by the first answer finds the others there: none is written while the
    batch's other answers are still being made."""
    server = await serve()
    raws, events = await recorded_connections(server, connect, token_post(bootstrap.key), 3)
    for raw in raws:
        raw.writer.write(token_post(bootstrap.key))  # all three arrive in one turn: one batch
    answers = [await raw.response() for raw in raws]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert events == ["answer"] * 3 + ["write"] * 3


async def test_a_webhook_answer_is_written_as_soon_as_it_is_made(
    serve: Any, connect: Any, bootstrap: Bootstrap
) -> None:
    """Held for the others of its turn, a webhook answer would wait for them: Hasura waits too."""
    server = await serve()
    (raw,), events = await recorded_connections(server, connect, webhook_get(bootstrap.key), 1)
    roles = (b"viewer", b"operator", b"anonymous")
    await raw.send(b"".join(webhook_get(bootstrap.key, extra=b"X-Hasura-Role: %s\r\n" % role) for role in roles))
    answers = [json.loads((await raw.response())[2]) for _ in roles]
    assert [answer["X-Hasura-Role"] for answer in answers] == [role.decode() for role in roles]
    assert events == ["answer", "write"] * 3
