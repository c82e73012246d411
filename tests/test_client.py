"""The Python client against the running server, and against servers that fail in the ways it retries."""

from __future__ import annotations

import asyncio
import email.utils
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sidecar.client import (
    AuthenticationError,
    InvalidApiKeyError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryPolicy,
    RevokedApiKeyError,
    ServerError,
    ServiceUnavailableError,
    SidecarClient,
    SidecarConnectionError,
    SyncSidecarClient,
)
from tests.conftest import bearer

Client = TestClient[Any, Any]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_manages_keys_against_the_real_server(client: Client, admin_key: str) -> None:
    async with SidecarClient(url(client), admin_key) as sidecar:
        assert await sidecar.validate_key()
        assert (await sidecar.permissions())["role"] == "super_admin"
        created = await sidecar.create_key(name="svc", role="viewer")
        assert created["key"].startswith("rk_view_")
        listed = await sidecar.list_keys(limit=100)
        assert created["id"] in [k["id"] for k in listed["data"]]
        rolled = await sidecar.roll_key(created["id"], expires_in=60)
        assert rolled["previous"]["id"] == created["id"]
        revoked = await sidecar.revoke_key(rolled["id"])
        assert revoked["status"] == "revoked"
        with pytest.raises(NotFoundError):
            await sidecar.get_key("key_missing")
        with pytest.raises(InvalidRequestError, match="permission"):
            await sidecar.create_key(type="restricted")
    async with SidecarClient(url(client), created["key"]) as viewer:
        assert await viewer.validate_key()
        with pytest.raises(PermissionDeniedError, match="admin"):
            await viewer.list_keys()
    async with SidecarClient(url(client), rolled["key"]) as revoked_client:
        assert not await revoked_client.validate_key()
        with pytest.raises(AuthenticationError) as info:
            await revoked_client.permissions()
        assert info.value.code == "REVOKED_API_KEY"
        assert isinstance(info.value, RevokedApiKeyError)
    async with SidecarClient(url(client), "sk_live_" + "x" * 40) as unknown:
        with pytest.raises(InvalidApiKeyError):
            await unknown.permissions()


async def _flaky_server(aiohttp_client: Any, failures: list[web.Response]) -> tuple[Client, list[int]]:
    calls: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        if failures:
            return failures.pop(0)
        return web.json_response({"valid": True, "role": "operator"})

    app = web.Application()
    app.router.add_get("/v1/auth/permissions", handler)
    return await aiohttp_client(app), calls


async def test_429_with_retry_after_then_200_is_retried_after_the_given_delay(aiohttp_client: Any) -> None:
    limited = web.json_response(
        {"error": "RATE_LIMITED", "message": "slow down"}, status=429, headers={"Retry-After": "2"}
    )
    server, calls = await _flaky_server(aiohttp_client, [limited])
    sleeps = Sleeps()
    async with SidecarClient(url(server), "sk_live_x", sleep=sleeps) as sidecar:
        assert (await sidecar.permissions())["role"] == "operator"
    assert len(calls) == 2
    assert sleeps.delays
    assert sleeps.delays[0] >= 2


async def test_503_twice_then_200_succeeds_with_growing_backoff(aiohttp_client: Any) -> None:
    failures = [web.json_response({"error": "SERVICE_UNAVAILABLE", "message": "x"}, status=503) for _ in range(2)]
    server, calls = await _flaky_server(aiohttp_client, failures)
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=3, base_delay_s=0.5, max_delay_s=10)
    async with SidecarClient(url(server), "sk_live_x", retry=retry, sleep=sleeps) as sidecar:
        assert (await sidecar.permissions())["role"] == "operator"
    assert len(calls) == 3
    assert len(sleeps.delays) == 2
    assert sleeps.delays[0] <= 0.5
    assert sleeps.delays[1] <= 1.0


async def test_4xx_is_never_retried(aiohttp_client: Any) -> None:
    bad = web.json_response({"error": "INVALID_REQUEST", "message": "nope"}, status=400)
    server, calls = await _flaky_server(aiohttp_client, [bad])
    async with SidecarClient(url(server), "sk_live_x", sleep=Sleeps()) as sidecar:
        with pytest.raises(InvalidRequestError, match="nope"):
            await sidecar.permissions()
    assert len(calls) == 1


async def test_gives_up_after_max_retries(aiohttp_client: Any) -> None:
    failures = [web.Response(status=502, text="bad gateway") for _ in range(5)]
    server, calls = await _flaky_server(aiohttp_client, failures)
    async with SidecarClient(url(server), "k", retry=RetryPolicy(max_retries=2), sleep=Sleeps()) as sidecar:
        with pytest.raises(ServerError) as info:
            await sidecar.permissions()
    assert info.value.status == 502
    assert len(calls) == 3

    limited = [web.json_response({"error": "RATE_LIMITED", "message": "x"}, status=429) for _ in range(5)]
    server, calls = await _flaky_server(aiohttp_client, limited)
    async with SidecarClient(url(server), "k", retry=RetryPolicy(max_retries=1), sleep=Sleeps()) as sidecar:
        with pytest.raises(RateLimitedError):
            await sidecar.permissions()


async def test_connection_errors_are_retried_then_raised(unused_tcp_port: int) -> None:
    sleeps = Sleeps()
    async with SidecarClient(
        f"http://127.0.0.1:{unused_tcp_port}", "k", retry=RetryPolicy(max_retries=2), sleep=sleeps
    ) as sidecar:
        with pytest.raises(SidecarConnectionError):
            await sidecar.permissions()
    assert len(sleeps.delays) == 2


def test_sync_client_wraps_the_async_one(admin_key_server: tuple[str, str]) -> None:
    base, key = admin_key_server
    with SyncSidecarClient(base, key) as sidecar:
        assert sidecar.validate_key()
        created = sidecar.create_key(type="publishable", name="web")
        assert created["key"].startswith("pk_live_")
        assert sidecar.get_key(created["id"])["display"].endswith(created["key"][-4:])


@pytest.fixture
def admin_key_server(settings: Any, bootstrap: Any) -> Any:
    """A real server in a background thread, for the blocking client."""
    import threading

    from sidecar.app import create_app

    ready = threading.Event()
    stop: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(create_app(settings, on_bootstrap=bootstrap))
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        stop["port"] = runner.addresses[0][1]
        stop["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{stop['port']}", bootstrap.key
    stop["loop"].call_soon_threadsafe(stop["loop"].stop)
    thread.join(10)


# --- in front of the running server: a proxy that fails the first requests, then forwards -----


class FaultyProxy:
    """Answers with ``failures`` first, then forwards every request to the real sidecar."""

    def __init__(self, upstream: str, failures: list[web.Response]) -> None:
        self.upstream = upstream
        self.failures = failures
        self.calls: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(f"{request.method} {request.path}")
        if self.failures:
            return self.failures.pop(0)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
            ) as resp,
        ):
            return web.Response(body=await resp.read(), status=resp.status, content_type=resp.content_type)


async def _proxy(aiohttp_client: Any, upstream: Client, failures: list[web.Response]) -> tuple[str, FaultyProxy]:
    proxy = FaultyProxy(url(upstream), failures)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return url(await aiohttp_client(app)), proxy


async def test_the_running_server_behind_a_429_with_retry_after_then_200(
    aiohttp_client: Any, client: Client, admin_key: str
) -> None:
    limited = web.json_response(
        {"error": "RATE_LIMITED", "message": "slow down"}, status=429, headers={"Retry-After": "1"}
    )
    base, proxy = await _proxy(aiohttp_client, client, [limited])
    sleeps = Sleeps()
    async with SidecarClient(base, admin_key, sleep=sleeps) as sidecar:
        permissions = await sidecar.permissions()
    assert permissions["role"] == "super_admin"  # the real server's answer
    assert proxy.calls == ["GET /v1/auth/permissions"] * 2
    assert len(sleeps.delays) == 1
    assert sleeps.delays[0] >= 1


async def test_the_running_server_behind_two_503s_creates_the_key_once(
    aiohttp_client: Any, client: Client, admin_key: str
) -> None:
    unavailable = [
        web.json_response({"error": "SERVICE_UNAVAILABLE", "message": "the store is away"}, status=503)
        for _ in range(2)
    ]
    base, proxy = await _proxy(aiohttp_client, client, unavailable)
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=3, base_delay_s=0.1, max_delay_s=5)
    async with SidecarClient(base, admin_key, retry=retry, sleep=sleeps) as sidecar:
        created = await sidecar.create_key(name="behind-503s", role="viewer")
        listed = await sidecar.list_keys(limit=100)
    assert created["key"].startswith("rk_view_")
    assert [k["name"] for k in listed["data"]].count("behind-503s") == 1
    assert proxy.calls[:3] == ["POST /v1/api_keys"] * 3
    assert len(sleeps.delays) == 2
    assert sleeps.delays[0] <= 0.1
    assert sleeps.delays[1] <= 0.2


async def test_503s_past_the_retries_are_a_typed_error(aiohttp_client: Any, client: Client, admin_key: str) -> None:
    unavailable = [web.json_response({"error": "SERVICE_UNAVAILABLE", "message": "x"}, status=503) for _ in range(3)]
    base, proxy = await _proxy(aiohttp_client, client, unavailable)
    async with SidecarClient(base, admin_key, retry=RetryPolicy(max_retries=2), sleep=Sleeps()) as sidecar:
        with pytest.raises(ServiceUnavailableError) as info:
            await sidecar.permissions()
    assert info.value.status == 503
    assert len(proxy.calls) == 3


async def test_a_retry_after_http_date_is_honoured(aiohttp_client: Any) -> None:
    now = 1_800_000_000.0
    when = email.utils.formatdate(now + 3, usegmt=True)
    limited = web.json_response({"error": "RATE_LIMITED", "message": "x"}, status=429, headers={"Retry-After": when})
    server, calls = await _flaky_server(aiohttp_client, [limited])
    sleeps = Sleeps()
    async with SidecarClient(url(server), "k", sleep=sleeps, clock=lambda: now) as sidecar:
        await sidecar.permissions()
    assert len(calls) == 2
    assert sleeps.delays[0] == pytest.approx(3.0)


async def test_a_retry_after_longer_than_we_would_wait_is_raised_at_once(aiohttp_client: Any) -> None:
    limited = web.json_response({"error": "RATE_LIMITED", "message": "x"}, status=429, headers={"Retry-After": "3600"})
    server, calls = await _flaky_server(aiohttp_client, [limited])
    sleeps = Sleeps()
    async with SidecarClient(url(server), "k", sleep=sleeps, retry=RetryPolicy(max_delay_s=10)) as sidecar:
        with pytest.raises(RateLimitedError) as info:
            await sidecar.permissions()
    assert info.value.retry_after == 3600
    assert len(calls) == 1
    assert sleeps.delays == []


async def test_the_token_is_cached_until_shortly_before_it_expires(
    aiohttp_client: Any, client: Client, admin_key: str
) -> None:
    base, proxy = await _proxy(aiohttp_client, client, [])
    now = [1_800_000_000.0]
    async with SidecarClient(base, admin_key, clock=lambda: now[0], token_refresh_margin_s=60) as sidecar:
        first = await sidecar.token()
        lifetime = float((await (await client.post("/v1/auth/token", headers=bearer(admin_key))).json())["expires_in"])
        now[0] += lifetime - 61
        assert await sidecar.token() == first
        assert proxy.calls.count("POST /v1/auth/token") == 1
        now[0] += 2  # within the refresh margin: a fresh token
        await sidecar.token()
        assert proxy.calls.count("POST /v1/auth/token") == 2
        narrowed = await sidecar.token(permissions=["orders:read"])
        assert narrowed != first
        assert proxy.calls.count("POST /v1/auth/token") == 3
    claims = await (await client.get("/v1/auth/validate", headers=bearer(first))).json()
    assert claims["valid"] is True
