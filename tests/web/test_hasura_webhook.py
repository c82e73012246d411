"""``/v1/hasura/webhook`` over real HTTP, called exactly as Hasura v2 and v3 call it.

Every answer goes through ``hasura_reads``: a response Hasura would turn into a 500 fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import HasuraWebhookSettings, Settings
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.hasura_rules import (
    BROWSER_HEADERS,
    HASURA_HEADERS,
    MISSING,
    HasuraView,
    get_mode_headers,
    hasura_reads,
    post_v2_body,
    post_v3_body,
)

Client = TestClient[Any, Any]
URL = "/v1/hasura/webhook"
QUERY = {"query": "query Orders { orders { id } }", "operationName": "Orders"}
MUTATION = {"query": "mutation { insert_orders_one(object: {}) { id } }", "variables": {}}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        hasura_webhook=HasuraWebhookSettings(credential_header="X-Api-Key", credential_cookie="sidecar_key")
    )


async def new_key(client: Client, admin_key: str, **body: Any) -> str:
    resp = await client.post("/v1/api_keys", json={"name": "k", **body}, headers=bearer(admin_key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["key"])


async def hook_get(client: Client, **client_headers: str) -> HasuraView:
    """Hasura v2 GET mode: the browser's headers, filtered (§1.4), plus Hasura's own (§1.5)."""
    resp = await client.get(
        URL, headers=get_mode_headers({**BROWSER_HEADERS, **client_headers}), skip_auto_headers={"User-Agent"}
    )
    assert resp.headers["Content-Type"].startswith("application/json")
    return hasura_reads(resp.status, await resp.read())


async def hook_post(client: Client, request: Any = MISSING, *, v3: bool = False, **client_headers: str) -> HasuraView:
    """Hasura POST mode: client headers in the body (§2.2, §5.7); only Hasura's headers on the call."""
    # a browser's headers, less its Origin: these tests send secret keys, which are refused with
    # one (a secret key in a browser has leaked; tests/web/test_cors.py)
    headers = {**{k: v for k, v in BROWSER_HEADERS.items() if k != "Origin"}, **client_headers}
    body = post_v3_body(headers) if v3 else post_v2_body(headers, request)
    resp = await client.post(URL, json=body, headers=HASURA_HEADERS, skip_auto_headers={"User-Agent"})
    return hasura_reads(resp.status, await resp.read())


async def test_get_with_api_key(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="manager", org_id="org_acme", team_id="team_9", user_id="u_1")
    view = await hook_get(client, Authorization=f"Bearer {key}")
    assert view.session == {
        "x-hasura-role": "manager",
        "x-hasura-user-id": "u_1",
        "x-hasura-org-id": "org_acme",
        "x-hasura-team-id": "team_9",
        "x-hasura-key-id": view.session["x-hasura-key-id"],
        "x-hasura-environment": "live",
        "x-hasura-permissions": "{orders:read,orders:write,customers:read,customers:write,inventory:read,"
        "inventory:write,returns:read,returns:write,reports:read,settings:write}",
        "cache-control": "max-age=60",
    }
    assert view.session["x-hasura-key-id"].startswith("key_")
    assert view.max_age == 60


@pytest.mark.parametrize("v3", [False, True])
async def test_post_modes_read_headers_in_any_case(client: Client, admin_key: str, v3: bool) -> None:
    key = await new_key(client, admin_key, type="secret", environment="test")
    view = await hook_post(client, QUERY, v3=v3, authorization=f"Bearer {key}", **{"X-Hasura-Role": "viewer"})
    assert view.role == "viewer"
    assert view.session["x-hasura-environment"] == "test"


@pytest.mark.parametrize("request_value", [MISSING, None, QUERY, [QUERY, QUERY]])
async def test_post_accepts_request_missing_null_object_or_batch(
    client: Client, admin_key: str, request_value: Any
) -> None:
    key = await new_key(client, admin_key, role="viewer")
    assert (await hook_post(client, request_value, Authorization=f"Bearer {key}")).role == "viewer"


async def test_role_selection(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="manager")
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "operator"})).role == "operator"
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"x-hasura-role": ""})).role == "manager"
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "admin"})).denied
    assert (await hook_post(client, QUERY, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "Manager"})).denied


async def test_bad_keys_are_exactly_401(client: Client, admin_key: str, clock: FrozenClock) -> None:
    key = await new_key(client, admin_key)
    revoked = await client.post("/v1/api_keys", json={"name": "r"}, headers=bearer(admin_key))
    revoked_body = await revoked.json()
    await client.delete(f"/v1/api_keys/{revoked_body['id']}", headers=bearer(admin_key))
    expiring = await new_key(client, admin_key, expires_at=(clock.now() + timedelta(seconds=5)).isoformat())
    clock.advance(6)
    bad = [
        key[:-1] + ("A" if key[-1] != "A" else "B"),  # mistyped: checksum fails
        revoked_body["key"],
        expiring,
        "sk_live_" + "x" * 38,
        "pk_test_",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "\u00e9\u00e9\u00e9",
        "sk_live_" + "\u00e9" * 38,
        "sk_live_" + "A" * 5000,
    ]
    for credential in bad:
        resp = await client.get(URL, headers=get_mode_headers({"Authorization": f"Bearer {credential}"}))
        assert resp.status == 401, credential
        assert hasura_reads(resp.status, await resp.read()).denied
        assert (await hook_post(client, QUERY, Authorization=f"Bearer {credential}")).denied


async def test_no_credentials_get_the_anonymous_role(client: Client) -> None:
    view = await hook_get(client)
    assert view.role == "anonymous"
    assert view.session["x-hasura-permissions"] == "{inventory:read}"
    assert (await hook_post(client, v3=True)).role == "anonymous"


async def test_anonymous_off_means_401(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    settings = make_settings(hasura_webhook=HasuraWebhookSettings(anonymous=False))
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=Bootstrap()))
    assert (await hook_get(client)).denied
    assert (await hook_post(client, QUERY)).denied


async def test_a_bad_credential_never_falls_back_to_anonymous(client: Client) -> None:
    for headers in ({"Authorization": "Basic dTpw"}, {"Authorization": "Bearer"}, {"X-Api-Key": "nope"}):
        assert (await hook_get(client, **headers)).denied, headers
    assert (await hook_get(client, Cookie="sidecar_key=")).denied


async def test_publishable_key_is_anonymous_plus_its_org(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, type="publishable", org_id="org_shop")
    view = await hook_get(client, Cookie=f"theme=dark; sidecar_key={key}")
    assert (view.role, view.session["x-hasura-org-id"]) == ("anonymous", "org_shop")
    assert (await hook_get(client, Cookie=f"sidecar_key={key}", **{"X-Hasura-Role": "viewer"})).denied


async def test_cookie_and_custom_header_credentials(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="viewer")
    assert (await hook_get(client, **{"X-Api-Key": key})).role == "viewer"
    assert (await hook_get(client, Cookie=f"sidecar_key={key}")).role == "viewer"
    assert (await hook_post(client, QUERY, **{"x-api-key": key})).role == "viewer"
    assert (await hook_post(client, QUERY, v3=True, Cookie=f"a=b; sidecar_key={key}")).role == "viewer"


async def test_operations_a_credential_may_not_run_are_refused(client: Client, admin_key: str) -> None:
    viewer = await new_key(client, admin_key, role="viewer")
    operator = await new_key(client, admin_key, role="operator")
    assert not (await hook_post(client, QUERY, Authorization=f"Bearer {viewer}")).denied
    assert (await hook_post(client, MUTATION, Authorization=f"Bearer {viewer}")).denied
    assert (await hook_post(client, [QUERY, MUTATION], Authorization=f"Bearer {viewer}")).denied
    assert not (await hook_post(client, [QUERY, MUTATION], Authorization=f"Bearer {operator}")).denied
    assert (await hook_post(client, MUTATION)).denied  # anonymous may not write
    assert (
        await hook_post(client, MUTATION, Authorization=f"Bearer {operator}", **{"X-Hasura-Role": "viewer"})
    ).role == "viewer"


async def test_unreadable_queries_are_refused_only_where_they_could_matter(client: Client, admin_key: str) -> None:
    viewer = await new_key(client, admin_key, role="viewer")
    operator = await new_key(client, admin_key, role="operator")
    broken = {"query": "mutation { insert_orders_one(object: {}) { id }"}
    assert (await hook_post(client, broken, Authorization=f"Bearer {viewer}")).denied
    assert (await hook_post(client, broken, Authorization=f"Bearer {operator}")).role == "operator"


async def test_operation_checks_can_be_turned_off(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    settings = make_settings(hasura_webhook=HasuraWebhookSettings(operation_checks=False))
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=Bootstrap()))
    assert (await hook_post(client, MUTATION)).role == "anonymous"


async def test_client_sent_hasura_headers_are_never_echoed(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, user_id="u_real")
    spoof = {
        "X-Hasura-Admin-Secret": "guess",
        "X-Hasura-Access-Key": "guess",
        "X-Hasura-Use-Backend-Only-Permissions": "true",
        "X-Hasura-User-Id": "u_spoofed",
        "X-Hasura-Org-Id": "org_other",
    }
    for view in (
        await hook_get(client, Authorization=f"Bearer {key}", **spoof),
        await hook_post(client, QUERY, Authorization=f"Bearer {key}", **spoof),
    ):
        assert view.session["x-hasura-user-id"] == "u_real"
        assert view.session["x-hasura-org-id"] == "org_default"


async def test_cache_control_never_outlives_the_key(client: Client, admin_key: str, clock: FrozenClock) -> None:
    key = await new_key(client, admin_key, expires_at=(clock.now() + timedelta(seconds=42)).isoformat())
    assert (await hook_get(client, Authorization=f"Bearer {key}")).max_age == 42
    clock.advance(40)
    assert (await hook_get(client, Authorization=f"Bearer {key}")).max_age == 2


async def test_revocation_through_this_process_takes_effect_at_once(client: Client, admin_key: str) -> None:
    created = await client.post("/v1/api_keys", json={"name": "r"}, headers=bearer(admin_key))
    body = await created.json()
    assert not (await hook_get(client, Authorization=f"Bearer {body['key']}")).denied  # now cached
    await client.delete(f"/v1/api_keys/{body['id']}", headers=bearer(admin_key))
    assert (await hook_get(client, Authorization=f"Bearer {body['key']}")).denied


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"request": {}}', b'{"headers": ["Authorization"]}', b'{"headers": "x"}']
)
async def test_bodies_hasura_never_sends_are_400(client: Client, raw: bytes) -> None:
    resp = await client.post(URL, data=raw, headers=HASURA_HEADERS)
    assert resp.status == 400
    assert (await resp.json())["error"] == "INVALID_REQUEST"


async def test_non_string_header_values_in_the_body_are_ignored(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key)
    body = {"headers": {"Authorization": f"Bearer {key}", "X-Hasura-Role": ["admin"], "X-Count": 3}}
    resp = await client.post(URL, json=body, headers=HASURA_HEADERS)
    assert hasura_reads(resp.status, await resp.read()).role == "operator"


async def test_large_post_bodies_up_to_the_webhook_limit(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="viewer")
    big = {"query": "query Q($v: String) { orders { id } }", "variables": {"v": "x" * 200_000}}
    assert (await hook_post(client, big, Authorization=f"Bearer {key}")).role == "viewer"
    resp = await client.post(URL, json=post_v2_body({}, {"query": "x" * 2_000_000}), headers=HASURA_HEADERS)
    assert resp.status == 400
