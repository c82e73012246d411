"""Rate limits as an API client sees them: 429 RATE_LIMITED, Retry-After and the RateLimit-* headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import Bootstrap, bearer
from tests.hasura_rules import BROWSER_HEADERS, HasuraView, get_mode_headers, hasura_reads

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]
TIGHT = {"requests": 1, "per_s": 10, "burst": 3}


async def start(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock) -> tuple[Client, str]:
    bootstrap = Bootstrap()
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    return client, bootstrap.key


async def new_key(client: Client, admin: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/api_keys", json={"name": "backend", **body}, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def limited(tmp_path: Path, **rate_limit: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limit={"enabled": True, **rate_limit})


async def test_over_the_limit_is_429_with_retry_after_and_ratelimit_headers(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    client, admin = await start(aiohttp_client, limited(tmp_path, by_role={"operator": TIGHT}), clock)
    key = (await new_key(client, admin))["key"]
    seen = []
    for _ in range(3):
        resp = await client.get("/v1/auth/validate", headers=bearer(key))
        assert resp.status == 200
        seen.append(resp.headers["RateLimit-Remaining"])
        assert resp.headers["RateLimit-Limit"] == "3"
    assert seen == ["2", "1", "0"]

    resp = await client.get("/v1/auth/validate", headers=bearer(key))
    assert resp.status == 429
    assert (await resp.json())["error"] == "RATE_LIMITED"
    assert resp.headers["Retry-After"] == "10"
    assert resp.headers["RateLimit-Limit"] == "3"
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert resp.headers["RateLimit-Reset"] == "30"

    clock.advance(10)
    assert (await client.get("/v1/auth/validate", headers=bearer(key))).status == 200

    metrics = await (await client.get("/metrics")).text()
    rejections = [
        s
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "sidecar_rate_limit_rejections_total"
    ]
    assert [(s.labels["scope"], s.value) for s in rejections] == [("key", 1.0)]


async def test_each_key_has_its_own_budget_and_a_key_override_wins(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    settings = limited(tmp_path, by_role={"operator": TIGHT})
    client, admin = await start(aiohttp_client, settings, clock)
    first, second = await new_key(client, admin), await new_key(client, admin)
    for _ in range(3):
        await client.get("/v1/auth/validate", headers=bearer(first["key"]))
    assert (await client.get("/v1/auth/validate", headers=bearer(first["key"]))).status == 429
    assert (await client.get("/v1/auth/validate", headers=bearer(second["key"]))).status == 200

    await client.close()
    roomy = limited(tmp_path, by_role={"operator": TIGHT}, by_key={first["id"]: {"requests": 100, "burst": 100}})
    client = await aiohttp_client(create_app(roomy, clock=clock))
    resp = await client.get("/v1/auth/validate", headers=bearer(first["key"]))
    assert resp.status == 200
    assert resp.headers["RateLimit-Limit"] == "100"


async def test_guessing_keys_from_one_address_is_throttled(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    client, admin = await start(aiohttp_client, limited(tmp_path, unauthenticated=TIGHT), clock)
    wrong = admin[:-1] + ("A" if admin[-1] != "A" else "B")
    statuses = [(await client.get("/v1/auth/validate", headers=bearer(wrong))).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert (await client.get("/v1/auth/validate")).status == 429  # no credentials: same address, same budget
    assert (await client.get("/v1/auth/validate", headers=bearer(admin))).status == 200  # a good key is not


async def test_behind_a_proxy_the_forwarded_address_is_the_client(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    settings = limited(tmp_path, unauthenticated=TIGHT, trusted_proxy_hops=1)
    client, _ = await start(aiohttp_client, settings, clock)
    for _ in range(3):
        await client.get("/v1/auth/validate", headers={"X-Forwarded-For": "spoofed, 203.0.113.7"})
    over = await client.get("/v1/auth/validate", headers={"X-Forwarded-For": "203.0.113.7"})
    assert over.status == 429
    other = await client.get("/v1/auth/validate", headers={"X-Forwarded-For": "spoofed, 198.51.100.2"})
    assert other.status == 401


async def test_limits_are_off_unless_enabled(aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock) -> None:
    client, admin = await start(aiohttp_client, Settings(data_dir=tmp_path / "data"), clock)
    resp = await client.get("/v1/auth/validate", headers=bearer(admin))
    assert resp.status == 200
    assert "RateLimit-Limit" not in resp.headers


async def test_replicas_sharing_redis_share_one_budget(
    aiohttp_client: ClientFactory, tmp_path: Path, redis_url: str
) -> None:
    settings = Settings(
        data_dir=tmp_path / "shared",
        redis_url=redis_url,
        redis={"timeout_s": 1.0},
        rate_limit={"enabled": True, "by_role": {"operator": {"requests": 1, "per_s": 60, "burst": 4}}},
    )
    bootstrap = Bootstrap()
    a, b = [await aiohttp_client(create_app(settings, on_bootstrap=bootstrap)) for _ in range(2)]
    key = (await new_key(a, bootstrap.key))["key"]
    statuses = [(await replica.get("/v1/auth/validate", headers=bearer(key))).status for replica in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429]


async def hook(client: Client, key: str | None) -> HasuraView:
    """A Hasura v2 GET-mode webhook call, read by Hasura's rules (anything but 200/401 fails)."""
    headers = {**BROWSER_HEADERS, **(bearer(key) if key else {})}
    resp = await client.get("/v1/hasura/webhook", headers=get_mode_headers(headers), skip_auto_headers={"User-Agent"})
    return hasura_reads(resp.status, await resp.read())


async def webhook_decisions(client: Client) -> dict[tuple[str, str], float]:
    """``sidecar_webhook_decisions_total`` of API-key calls, by (result, reason), from ``/metrics``."""
    text = await (await client.get("/metrics")).text()
    return {
        (s.labels["result"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sidecar_webhook_decisions_total" and s.labels["credential_type"] == "api_key"
    }


async def test_over_the_limit_on_the_webhook_is_a_401_hasura_understands(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    client, admin = await start(aiohttp_client, limited(tmp_path, by_role={"operator": TIGHT}), clock)
    key = (await new_key(client, admin))["key"]
    views = [await hook(client, key) for _ in range(4)]
    assert [v.denied for v in views] == [False, False, False, True]
    clock.advance(10)
    assert not (await hook(client, key)).denied
    assert await webhook_decisions(client) == {("allow", "api_key"): 4, ("deny", "rate_limited"): 1}


async def test_the_webhook_can_let_calls_over_the_limit_through(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    settings = limited(tmp_path, by_role={"operator": TIGHT}, webhook="allow")
    client, admin = await start(aiohttp_client, settings, clock)
    key = (await new_key(client, admin))["key"]
    views = [await hook(client, key) for _ in range(5)]
    assert not any(v.denied for v in views)
    assert all(v.session["x-hasura-role"] for v in views)
    resp = await client.get("/v1/auth/validate", headers=bearer(key))
    assert resp.status == 429  # our own API still says so
    assert await webhook_decisions(client) == {("allow", "api_key"): 3, ("allow", "over_limit"): 2}


async def test_anonymous_webhook_calls_are_not_one_shared_budget(
    aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    client, _ = await start(aiohttp_client, limited(tmp_path, default=TIGHT, unauthenticated=TIGHT), clock)
    views = [await hook(client, None) for _ in range(10)]
    assert not any(v.denied for v in views)
