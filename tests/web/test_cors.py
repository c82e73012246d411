"""CORS on the browser endpoints, publishable keys' origins, and secret keys refused in browsers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import create_app
from sidecar.errors import ConfigError
from sidecar.ports.clock import FrozenClock
from sidecar.settings import load_settings
from tests.conftest import Bootstrap, ClientFactory, bearer

Client = TestClient[Any, Any]
SHOP = "https://shop.example"
ADMIN_SITE = "https://admin.shop.example"
EVIL = "https://evil.example"


@pytest.fixture
async def http(aiohttp_client: ClientFactory, make_settings: Any, clock: FrozenClock, bootstrap: Bootstrap) -> Client:
    settings = make_settings(cors={"allowed_origins": [SHOP, "https://Admin.Shop.Example:443/"], "max_age_s": 120})
    return await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))


async def create_key(http: Client, admin: str, **body: Any) -> str:
    resp = await http.post("/v1/api_keys", json=body, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["key"])


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/auth/token", "POST"),
        ("/v1/auth/validate", "GET"),
        ("/v1/auth/permissions", "GET"),
        ("/oauth/token", "POST"),
    ],
)
async def test_preflight_from_an_allowed_origin(http: Client, path: str, method: str) -> None:
    resp = await http.options(path, headers=preflight(SHOP, method))
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == SHOP
    assert method in resp.headers["Access-Control-Allow-Methods"].split(", ")
    assert {"authorization", "content-type"} <= set(resp.headers["Access-Control-Allow-Headers"].split(", "))
    assert resp.headers["Access-Control-Max-Age"] == "120"
    assert "Origin" in resp.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in resp.headers


async def test_configured_origins_are_normalized(http: Client) -> None:
    resp = await http.options("/v1/auth/token", headers=preflight(ADMIN_SITE))
    assert resp.headers["Access-Control-Allow-Origin"] == ADMIN_SITE


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (preflight(EVIL), "origin"),
        (preflight("null"), "origin"),
        (preflight(SHOP + ".evil.example"), "origin"),
        (preflight(SHOP, method="DELETE"), "DELETE"),
        (preflight(SHOP, headers="authorization, x-hasura-admin-secret"), "x-hasura-admin-secret"),
    ],
)
async def test_preflight_refused(http: Client, headers: dict[str, str], reason: str) -> None:
    resp = await http.options("/v1/auth/token", headers=headers)
    assert resp.status == 403
    body = await resp.json()
    assert body["error"] == "ORIGIN_NOT_ALLOWED"
    assert reason in body["message"]
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_plain_options_lists_the_methods(http: Client) -> None:
    resp = await http.options("/v1/auth/validate")
    assert resp.status == 204
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"


async def test_answers_name_only_allowed_origins_and_always_vary(http: Client, bootstrap: Bootstrap) -> None:
    pk = await create_key(http, bootstrap.key, type="publishable")
    allowed = await http.get("/v1/auth/validate", headers={**bearer(pk), "Origin": SHOP})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "RateLimit-Limit" in allowed.headers["Access-Control-Expose-Headers"]
    assert allowed.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    foreign = await http.get("/v1/auth/validate", headers={**bearer(pk), "Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in foreign.headers  # the browser will not let the page read it
    assert foreign.headers["Vary"] == "Origin"
    server = await http.get("/v1/auth/validate", headers=bearer(pk))
    assert server.status == 200
    assert server.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in server.headers
    other = await http.get("/healthz", headers={"Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_publishable_key_is_refused_from_origins_it_does_not_allow(http: Client, bootstrap: Bootstrap) -> None:
    pk = await create_key(http, bootstrap.key, type="publishable", allowed_origins=["https://SHOP.example/"])
    ok = await http.post("/v1/auth/token", headers={**bearer(pk), "Origin": SHOP})
    assert ok.status == 200, await ok.text()
    assert "access_token" in await ok.json()
    for origin in (ADMIN_SITE, EVIL, "null"):
        refused = await http.post("/v1/auth/token", headers={**bearer(pk), "Origin": origin})
        assert refused.status == 401
        body = await refused.json()
        assert body == {"error": "ORIGIN_NOT_ALLOWED", "message": body["message"]}
        assert "allowed_origins" in body["message"]
    # the page on an allowed CORS origin can read why it was refused
    assert refused.headers.get("Access-Control-Allow-Origin") is None
    readable = await http.get("/v1/auth/permissions", headers={**bearer(pk), "Origin": ADMIN_SITE})
    assert readable.status == 401
    assert readable.headers["Access-Control-Allow-Origin"] == ADMIN_SITE
    # no Origin: a server, which origins do not constrain
    assert (await http.get("/v1/auth/validate", headers=bearer(pk))).status == 200


@pytest.mark.parametrize("key_type", ["secret", "restricted"])
async def test_secret_and_restricted_keys_from_a_browser_are_refused_and_counted(
    http: Client, bootstrap: Bootstrap, key_type: str
) -> None:
    body: dict[str, Any] = {"type": key_type}
    if key_type == "restricted":
        body["permissions"] = ["orders:read"]
    key = await create_key(http, bootstrap.key, **body)
    for path in ("/v1/auth/validate", "/v1/auth/permissions"):
        resp = await http.get(path, headers={**bearer(key), "Origin": SHOP})
        assert resp.status == 401
        answer = await resp.json()
        assert answer["error"] == "SECRET_KEY_IN_BROWSER"
        assert "leaked" in answer["message"]
        assert key not in answer["message"]
    exchange = await http.post("/v1/auth/token", headers={**bearer(key), "Origin": EVIL})
    assert (await exchange.json())["error"] == "SECRET_KEY_IN_BROWSER"
    assert (await http.get("/v1/auth/validate", headers=bearer(key))).status == 200  # from a server: fine
    assert refusals(await (await http.get("/metrics")).text()) == {("secret_key_from_browser", key_type): 3.0}


async def test_origin_refusals_are_counted(http: Client, bootstrap: Bootstrap) -> None:
    pk = await create_key(http, bootstrap.key, type="publishable", allowed_origins=[SHOP])
    await http.get("/v1/auth/validate", headers={**bearer(pk), "Origin": EVIL})
    assert refusals(await (await http.get("/metrics")).text()) == {("origin_not_allowed", "publishable"): 1.0}


async def test_session_tokens_are_fine_in_browsers(http: Client, bootstrap: Bootstrap) -> None:
    secret = await create_key(http, bootstrap.key, type="secret", role="viewer")
    token = (await (await http.post("/v1/auth/token", headers=bearer(secret))).json())["access_token"]
    resp = await http.get("/v1/auth/permissions", headers={**bearer(token), "Origin": SHOP})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == SHOP


async def test_webhook_post_mode_applies_the_same_rules(http: Client, bootstrap: Bootstrap) -> None:
    pk = await create_key(http, bootstrap.key, type="publishable", allowed_origins=[SHOP])
    secret = await create_key(http, bootstrap.key, type="secret")

    async def hook(key: str, origin: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {key}", **({"Origin": origin} if origin else {})}
        resp = await http.post("/v1/hasura/webhook", json={"headers": headers, "request": None})
        return resp.status, await resp.json()

    assert (await hook(pk, SHOP))[0] == 200
    assert (await hook(pk, EVIL)) == (
        401,
        {"error": "ORIGIN_NOT_ALLOWED", "message": (await hook(pk, EVIL))[1]["message"]},
    )
    status, body = await hook(secret, SHOP)
    assert (status, body["error"]) == (401, "SECRET_KEY_IN_BROWSER")
    assert (await hook(secret, None))[0] == 200


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        (["https://*.shop.example"], "wildcard"),
        (["*"], "wildcard"),
        (["https://shop.example/path"], "path"),
        (["ftp://shop.example"], "http(s)"),
        (["shop.example"], "http(s)"),
    ],
)
async def test_key_origins_must_be_exact(http: Client, bootstrap: Bootstrap, origins: list[str], message: str) -> None:
    resp = await http.post(
        "/v1/api_keys", json={"type": "publishable", "allowed_origins": origins}, headers=bearer(bootstrap.key)
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "INVALID_REQUEST"
    assert message in body["message"]


async def test_only_publishable_keys_take_origins(http: Client, bootstrap: Bootstrap) -> None:
    resp = await http.post(
        "/v1/api_keys", json={"type": "secret", "allowed_origins": [SHOP]}, headers=bearer(bootstrap.key)
    )
    assert resp.status == 400
    assert "publishable" in (await resp.json())["message"]


def test_settings_refuse_wildcards(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SIDECAR_CORS__ALLOWED_ORIGINS"):
        load_settings(data_dir=tmp_path, cors={"allowed_origins": ["*"]})


def refusals(exposition: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        if family.name == "sidecar_browser_credential_refusals":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["reason"], sample.labels["key_type"]] = sample.value
    return found
