"""/metrics, /healthz, /readyz and the request id, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sidecar.app import create_app
from sidecar.domain import jwk
from sidecar.errors import Unavailable
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from sidecar.web.state import READINESS, SERVICES
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.oauth_support import basic, register_client
from tests.redis_fixtures import RedisProcess

Client = TestClient[Any, Any]
# max-age 300 + reload 30 + skew 60; token lifetime 3600 + skew 60
ACTIVATION_DELAY = 390
RETENTION = 3660


async def scrape(client: Client, **headers: str) -> tuple[str, list[Sample]]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = await resp.text()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return text, samples


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


async def test_metrics_after_real_traffic(client: Client, admin_key: str) -> None:
    for _ in range(3):
        assert (await client.get("/v1/auth/validate", headers=bearer(admin_key))).status == 200
    wrong = admin_key[:-1] + ("A" if admin_key[-1] != "A" else "B")
    assert (await client.get("/v1/auth/validate", headers=bearer(wrong))).status == 401
    created = await client.post("/v1/api_keys", json={"name": "m"}, headers=bearer(admin_key))
    key_id = (await created.json())["id"]
    assert (await client.get(f"/v1/api_keys/{key_id}", headers=bearer(admin_key))).status == 200
    assert (await client.get(f"/v1/api_keys/{admin_key}", headers=bearer(admin_key))).status == 404
    assert (await client.get(f"/nowhere/{admin_key}")).status == 404

    text, samples = await scrape(client)

    count = "sidecar_http_request_duration_seconds_count"
    assert find(samples, count, route="/v1/auth/validate", method="GET", status="200")[0].value == 3
    assert find(samples, count, route="/v1/auth/validate", status="401")[0].value == 1
    assert find(samples, count, route="/v1/api_keys/{key_id}", status="200")[0].value == 1
    assert find(samples, count, route="/v1/api_keys/{key_id}", status="404")[0].value == 1
    assert find(samples, count, route="unmatched", status="404")[0].value == 1
    buckets = find(samples, "sidecar_http_request_duration_seconds_bucket", route="/v1/auth/validate", status="200")
    assert {b.labels["le"] for b in buckets} >= {"0.0001", "0.00025", "0.001", "10.0", "+Inf"}
    lookups = find(samples, "sidecar_key_cache_lookups_total", tier="memory")
    assert {s.labels["result"] for s in lookups} == {"hit", "miss"}
    assert find(samples, "sidecar_store_call_duration_seconds_count", operation="get_key_by_digest")
    assert find(samples, "sidecar_build_info", version="0.1.0")[0].value == 1

    # nothing identifying in any label: no key, key id, org id or raw path
    for sample in samples:
        for value in sample.labels.values():
            assert admin_key not in value
            assert key_id not in value
            assert "org_default" not in value
    assert admin_key not in text

    promtool = shutil.which("promtool")
    if promtool:  # Debian's `prometheus` package; optional
        proc = await asyncio.create_subprocess_exec(
            promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
        )
        out, _ = await proc.communicate(text.encode())
        assert proc.returncode == 0, out.decode()


async def test_metrics_bearer_token(aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]) -> None:
    client = await aiohttp_client(create_app(make_settings(metrics={"bearer_token": "scrape-secret"})))
    denied = await client.get("/metrics")
    assert denied.status == 401
    assert (await denied.json())["error"] == "UNAUTHENTICATED"
    assert (await client.get("/metrics", headers=bearer("scrape-secre"))).status == 401
    await scrape(client, Authorization="Bearer scrape-secret")


async def test_metrics_can_be_switched_off(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(metrics={"enabled": False})))
    assert (await client.get("/metrics")).status == 404
    assert (await client.get("/healthz")).status == 200


async def test_two_apps_in_one_process_have_their_own_series(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], bootstrap: Bootstrap
) -> None:
    first = await aiohttp_client(create_app(make_settings(), on_bootstrap=bootstrap))
    second = await aiohttp_client(create_app(make_settings()))
    assert (await first.get("/v1/auth/validate", headers=bearer(bootstrap.key))).status == 200
    _, samples = await scrape(second)
    assert not find(samples, "sidecar_http_request_duration_seconds_count", route="/v1/auth/validate")


async def test_healthz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "version": "0.1.0"}


async def test_readyz_reports_each_check(client: Client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"store": {"ok": True}, "signing_key": {"ok": True}}}

    async def broken() -> None:
        raise Unavailable("redis://:hunter2@cache down", reason="cache_unavailable")

    client.server.app[READINESS].add("cache", broken)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body == {
        "status": "not_ready",
        "checks": {
            "store": {"ok": True},
            "signing_key": {"ok": True},
            "cache": {"ok": False, "reason": "cache_unavailable"},
        },
    }
    assert "hunter2" not in await resp.text()


async def test_readyz_fails_without_a_signing_key(client: Client, settings: Settings) -> None:
    """A store whose signing keys are gone (wiped, or restored from an old backup): not ready."""
    with sqlite3.connect(settings.data_dir / "sidecar.db") as db:
        db.execute("DELETE FROM signing_keys")
    await client.server.app[SERVICES].signing_keys.reload()  # the periodic reload
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["checks"]["signing_key"] == {"ok": False, "reason": "no_signing_key"}
    assert body["checks"]["store"] == {"ok": True}


async def test_request_id_is_echoed_when_sane(client: Client, admin_key: str) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "req-1234.abc_DEF:9"})
    assert resp.headers["X-Request-Id"] == "req-1234.abc_DEF:9"
    denied = await client.get("/v1/auth/validate", headers={"X-Request-Id": "trace-42"})
    assert denied.status == 401
    assert denied.headers["X-Request-Id"] == "trace-42"
    missing = await client.get("/no/such/route", headers={"X-Request-Id": "r404"})
    assert missing.headers["X-Request-Id"] == "r404"


async def test_request_id_is_generated_when_absent_or_odd(client: Client) -> None:
    generated = {(await client.get("/healthz")).headers["X-Request-Id"] for _ in range(3)}
    assert len(generated) == 3
    for odd in ("x" * 129, "has space", 'quote"d', "<script>", ""):
        got = (await client.get("/healthz", headers={"X-Request-Id": odd})).headers["X-Request-Id"]
        assert got != odd
        assert len(got) == 24
        assert all(c in "0123456789abcdef" for c in got)


async def test_with_redis_readiness_checks_it_and_metrics_show_its_tier(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], own_redis: RedisProcess
) -> None:
    bootstrap = Bootstrap()
    client = await aiohttp_client(create_app(make_settings(redis_url=own_redis.url), on_bootstrap=bootstrap))
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["cache"] == {"ok": True}

    for _ in range(2):
        assert (await client.get("/v1/auth/validate", headers=bearer(bootstrap.key))).status == 200
    _, samples = await scrape(client)
    assert find(samples, "sidecar_key_cache_lookups_total", tier="redis", result="miss")
    assert find(samples, "sidecar_redis_call_duration_seconds_count", operation="get")

    own_redis.kill()
    down = await client.get("/readyz")
    assert down.status == 200  # still serving (in-process tier and store): stay in the load balancer
    body = await down.json()
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert checks["store"] == {"ok": True}
    assert checks["cache"]["ok"] is False
    assert own_redis.url.split("//")[1] not in await down.text()


# --- session tokens and signing keys in /metrics -----------------------------------------------


def issued(samples: list[Sample], algorithm: str) -> float:
    found = find(samples, "sidecar_tokens_issued_total", algorithm=algorithm)
    return found[0].value if found else 0.0


def key_ages(samples: list[Sample]) -> dict[str, float]:
    return {s.labels["slot"]: s.value for s in find(samples, "sidecar_signing_key_age_seconds")}


async def test_tokens_issued_are_counted_per_algorithm(client: Client, admin_key: str) -> None:
    _, before = await scrape(client)
    assert issued(before, "RS256") == 0
    for _ in range(2):
        assert (await client.post("/v1/auth/token", headers=bearer(admin_key))).status == 200
    _, after_exchange = await scrape(client)
    assert issued(after_exchange, "RS256") == 2

    partner = await register_client(client, admin_key)
    grant = {"grant_type": "client_credentials", "scope": "orders:read"}
    resp = await client.post("/oauth/token", data=grant, headers=basic(partner["id"], partner["client_secret"]))
    assert resp.status == 200, await resp.text()
    _, after_oauth = await scrape(client)
    assert issued(after_oauth, "RS256") == 3  # an OAuth access token is a session JWT too
    refused = await client.post("/v1/auth/token", json={"ttl": 10**9}, headers=bearer(admin_key))
    assert refused.status == 403
    _, after_refusal = await scrape(client)
    assert issued(after_refusal, "RS256") == 3


async def test_tokens_issued_with_hs256_are_labelled_so(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], bootstrap: Bootstrap
) -> None:
    jwt = {"algorithm": "HS256", "hs256_secret": "a-shared-secret-of-at-least-thirty-two-bytes"}
    client = await aiohttp_client(create_app(make_settings(jwt=jwt), on_bootstrap=bootstrap))
    assert (await client.post("/v1/auth/token", headers=bearer(bootstrap.key))).status == 200
    _, samples = await scrape(client)
    assert issued(samples, "HS256") == 1
    assert issued(samples, "RS256") == 0
    assert key_ages(samples) == {}  # the secret has no creation time to age from


async def test_signing_key_ages_per_slot_through_a_rotation(client: Client, admin_key: str, clock: FrozenClock) -> None:
    _, samples = await scrape(client)
    assert key_ages(samples) == {"current": 0}  # recorded when the ring started
    clock.advance(100)
    resp = await client.post("/v1/signing_keys/rotate", headers=bearer(admin_key))
    assert resp.status == 201
    _, samples = await scrape(client)
    assert key_ages(samples) == {"current": 100, "next": 0}
    clock.advance(ACTIVATION_DELAY)
    ring = client.server.app[SERVICES].signing_keys
    await ring.reload()  # the periodic reload: the next key now signs
    _, samples = await scrape(client)
    assert key_ages(samples) == {"current": ACTIVATION_DELAY, "previous": 100 + ACTIVATION_DELAY}
    clock.advance(RETENTION)
    await ring.reload()
    _, samples = await scrape(client)
    assert key_ages(samples) == {"current": ACTIVATION_DELAY + RETENTION}  # the previous key retired


async def test_signing_key_ages_of_key_files_count_from_their_modification_time(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock, tmp_path: Path
) -> None:
    paths = []
    for days_old, name in ((40, "old.pem"), (10, "new.pem")):
        path = tmp_path / name
        path.write_bytes(jwk.to_pem(jwk.generate("ES256")))
        modified = clock.now().timestamp() - days_old * 86_400
        os.utime(path, (modified, modified))
        paths.append(path)
    settings = make_settings(jwt={"algorithm": "ES256", "key_files": paths})
    client = await aiohttp_client(create_app(settings, clock=clock))
    _, samples = await scrape(client)
    assert key_ages(samples) == {"current": 10 * 86_400, "previous": 40 * 86_400}
