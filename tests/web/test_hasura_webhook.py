"""``/v1/hasura/webhook`` over real HTTP, called exactly as Hasura v2 and v3 call it.

Every answer goes through ``hasura_reads``: a response Hasura would turn into a 500 fails here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import create_app
from sidecar.domain import keyformat
from sidecar.logs import JsonFormatter
from sidecar.models import Environment, KeyType
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
from tests.ports.pgproxy import PgRelay

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


async def decisions(client: Client) -> dict[tuple[str, str, str], float]:
    """``sidecar_webhook_decisions_total`` as scraped from ``/metrics``, by (result, reason, type)."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    return {
        (s.labels["result"], s.labels["reason"], s.labels["credential_type"]): s.value
        for family in text_string_to_metric_families(await resp.text())
        for s in family.samples
        if s.name == "sidecar_webhook_decisions_total"
    }


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
    view = await hook_post(client, QUERY, v3=v3, authorization=f"Bearer {key}", **{"X-Hasura-Role": "anonymous"})
    assert view.role == "anonymous"
    assert view.session["x-hasura-environment"] == "test"


@pytest.mark.parametrize("request_value", [MISSING, None, QUERY, [QUERY, QUERY]])
async def test_post_accepts_request_missing_null_object_or_batch(
    client: Client, admin_key: str, request_value: Any
) -> None:
    key = await new_key(client, admin_key, role="viewer")
    assert (await hook_post(client, request_value, Authorization=f"Bearer {key}")).role == "viewer"


async def test_role_selection(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="admin")
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "manager"})).role == "manager"
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"x-hasura-role": ""})).role == "org_admin"
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "super_admin"})).denied
    assert (await hook_post(client, QUERY, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "Manager"})).denied


async def test_acting_as_another_role_carries_only_that_roles_permissions(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="admin")
    own = await hook_get(client, Authorization=f"Bearer {key}")
    assert own.session["x-hasura-permissions"] == "{admin}"
    as_viewer = await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "viewer"})
    viewer = await (
        await client.get("/v1/auth/permissions", headers=bearer(await new_key(client, admin_key, role="viewer")))
    ).json()
    assert as_viewer.session["x-hasura-permissions"] == "{" + ",".join(viewer["scopes"]) + "}"
    as_anonymous = await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "anonymous"})
    assert as_anonymous.session["x-hasura-permissions"] == "{inventory:read}"
    again = await hook_get(client, Authorization=f"Bearer {key}")  # and its own session is unchanged
    assert again.session == own.session


@pytest.mark.parametrize(("role", "lower"), [("operator", "viewer"), ("manager", "viewer"), ("manager", "operator")])
async def test_acting_as_a_lower_role_never_widens_own_or_team(
    client: Client, admin_key: str, role: str, lower: str
) -> None:
    # viewer reads every row of the org: an operator (own rows) or a manager (team rows) acting
    # as viewer would undo its ownership filter; operator reads settings, which manager may not
    key = await new_key(client, admin_key, role=role, team_id="team_1", user_id="u_1")
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": lower})).denied
    assert (await hook_post(client, QUERY, Authorization=f"Bearer {key}", **{"X-Hasura-Role": lower})).denied
    assert (await hook_get(client, Authorization=f"Bearer {key}", **{"X-Hasura-Role": "anonymous"})).role == "anonymous"


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


async def test_keyless_requests_carry_no_org_unless_one_is_configured(
    client: Client, aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    assert "x-hasura-org-id" not in (await hook_get(client)).session
    settings = make_settings(hasura_webhook=HasuraWebhookSettings(anonymous_org_id="org_shop"))
    shop = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=Bootstrap()))
    for view in (await hook_get(shop), await hook_post(shop, QUERY), await hook_post(shop, v3=True)):
        assert (view.role, view.session["x-hasura-org-id"]) == ("anonymous", "org_shop")
        assert "x-hasura-user-id" not in view.session


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


async def test_acting_as_a_read_only_role_holds_a_key_to_that_roles_scopes(client: Client, admin_key: str) -> None:
    admin = await new_key(client, admin_key, role="admin")
    as_viewer = {"Authorization": f"Bearer {admin}", "X-Hasura-Role": "viewer"}
    assert (await hook_post(client, QUERY, **as_viewer)).role == "viewer"
    assert (await hook_post(client, MUTATION, **as_viewer)).denied
    assert (await hook_post(client, [QUERY, MUTATION], **as_viewer)).denied
    as_manager = {"Authorization": f"Bearer {admin}", "X-Hasura-Role": "manager"}
    assert (await hook_post(client, MUTATION, **as_manager)).role == "manager"
    assert not (await hook_post(client, MUTATION, Authorization=f"Bearer {admin}")).denied


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
    ("raw", "reason"),
    [
        (b"", "body_malformed"),
        (b"not json", "body_malformed"),
        (b"\xff\xfe{}", "body_malformed"),
        (b"[]", "body_not_object"),
        (b'{"request": {}}', "webhook_headers_missing"),
        (b'{"headers": ["Authorization"]}', "webhook_headers_missing"),
        (b'{"headers": "x"}', "webhook_headers_missing"),
        (b'{"headers": null, "request": null}', "webhook_headers_missing"),
    ],
)
async def test_bodies_hasura_never_sends_are_401(client: Client, raw: bytes, reason: str) -> None:
    """Hasura turns a 400 into a 500 for its client (§1.7): a body it never sends is refused with 401."""
    resp = await client.post(URL, data=raw, headers=HASURA_HEADERS)
    assert resp.status == 401
    assert hasura_reads(resp.status, await resp.read()).denied
    assert (await resp.json())["error"] == "UNAUTHENTICATED"
    assert await decisions(client) == {("deny", reason, "unknown"): 1}


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
    assert resp.status == 401
    assert (await resp.json())["error"] == "UNAUTHENTICATED"


async def test_any_json_hasura_forwards_is_read_and_anything_else_is_401(client: Client, admin_key: str) -> None:
    """JSON allows integers beyond 64 bits (a variable Hasura would pass to PostgreSQL's numeric);
    a body nested deeper than any parser's stack is not a request, and is a 401, not a 500."""
    key = await new_key(client, admin_key, role="viewer")
    huge = {"query": "query Q($n: numeric) { orders(where: {total: {_gt: $n}}) { id } }", "variables": {"n": 2**70}}
    assert (await hook_post(client, huge, Authorization=f"Bearer {key}")).role == "viewer"
    headers = json.dumps({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    deep = '{"headers": ' + headers + ', "request": ' + "[" * 100_000 + "]" * 100_000 + "}"
    resp = await client.post(URL, data=deep, headers=HASURA_HEADERS)
    assert resp.status == 401
    assert (await resp.json())["error"] == "UNAUTHENTICATED"
    assert ("deny", "body_malformed", "unknown") in await decisions(client)


async def test_a_body_over_the_limit_is_401_with_or_without_a_content_length(client: Client) -> None:
    big = json.dumps(post_v2_body({}, {"query": "x" * 2_000_000})).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    declared = await client.post(URL, data=big, headers=HASURA_HEADERS)
    chunked = await client.post(URL, data=chunks(), headers=HASURA_HEADERS)
    for resp in (declared, chunked):
        assert resp.status == 401
        assert hasura_reads(resp.status, await resp.read()).denied
    assert await decisions(client) == {("deny", "body_too_large", "unknown"): 2}


# --- request: null, subscriptions ------------------------------------------------------------------

INVENTORY = {"query": "query Stock { inventory { sku } }", "operationName": "Stock"}
SUBSCRIPTION = {"query": "subscription Live { orders { id } }", "operationName": "Live"}


async def test_request_null_is_refused_for_a_key_held_to_its_scopes(client: Client, admin_key: str) -> None:
    """Hasura sends ``request: null`` at a websocket's connection_init (§1.2, §2.3): whatever the
    websocket carries later never reaches the webhook, so null counts as an unseen operation."""
    key = await new_key(client, admin_key, type="restricted", permissions=["inventory:read"])
    auth = {"Authorization": f"Bearer {key}"}
    assert (await hook_post(client, INVENTORY, **auth)).role == "restricted"
    assert (await hook_post(client, MISSING, **auth)).denied
    assert (await hook_post(client, None, **auth)).denied
    assert (await hook_post(client, [INVENTORY, None], **auth)).denied
    assert (await decisions(client))["deny", "operation_not_sent", "api_key"] == 2


async def test_subscriptions_only_for_the_listed_roles(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    settings = make_settings(hasura_webhook=HasuraWebhookSettings(subscription_roles=("operator",)))
    boot = Bootstrap()
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=boot))
    manager = {"Authorization": f"Bearer {await new_key(client, boot.key, role='manager')}"}
    operator = {"Authorization": f"Bearer {await new_key(client, boot.key, role='operator')}"}
    assert (await hook_post(client, SUBSCRIPTION, **operator)).role == "operator"
    assert (await hook_post(client, None, **operator)).role == "operator"
    assert (await hook_post(client, QUERY, **manager)).role == "manager"
    assert (await hook_post(client, SUBSCRIPTION, **manager)).denied
    assert (await hook_post(client, [QUERY, SUBSCRIPTION], **manager)).denied
    assert (await hook_post(client, None, **manager)).denied  # a websocket's connection_init
    # acting as a role that may subscribe is what the role decides, not the key's own role
    admin = {"Authorization": f"Bearer {await new_key(client, boot.key, role='admin')}"}
    assert (await hook_post(client, SUBSCRIPTION, **admin)).denied
    assert (await hook_post(client, SUBSCRIPTION, **admin, **{"X-Hasura-Role": "operator"})).role == "operator"
    assert (await hook_post(client, SUBSCRIPTION)).denied  # anonymous is not listed either
    assert (await decisions(client))["deny", "subscription_not_allowed", "api_key"] == 4


# --- the decision metric and the request log -------------------------------------------------------


async def test_every_answer_is_counted_by_result_reason_and_credential_type(client: Client, admin_key: str) -> None:
    viewer = await new_key(client, admin_key, role="viewer")
    assert (await hook_get(client, Authorization=f"Bearer {viewer}")).role == "viewer"
    assert (await hook_post(client, QUERY, Authorization=f"Bearer {viewer}")).role == "viewer"
    assert (await hook_post(client, MUTATION, Authorization=f"Bearer {viewer}")).denied
    assert (await hook_get(client, Authorization=f"Bearer {viewer}", **{"X-Hasura-Role": "operator"})).denied
    assert (await hook_get(client)).role == "anonymous"
    assert (await hook_get(client, Authorization="Basic dTpw")).denied
    assert (await hook_get(client, Authorization="Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")).denied  # HS256: not ours
    assert (await hook_get(client, Authorization="Bearer nonsense")).denied
    assert await decisions(client) == {
        ("allow", "api_key", "api_key"): 2,
        ("deny", "mutation_not_allowed", "api_key"): 1,
        ("deny", "role_not_allowed", "api_key"): 1,
        ("allow", "anonymous", "anonymous"): 1,
        ("deny", "credential_malformed", "malformed"): 1,
        ("deny", "token_alg_not_allowed", "session_jwt"): 1,
        ("deny", "credential_unrecognised", "unknown"): 1,
    }


async def test_no_decision_is_counted_with_metrics_off(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    settings = make_settings(metrics={"enabled": False})
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=Bootstrap()))
    assert (await hook_get(client)).role == "anonymous"
    assert (await client.get("/metrics")).status == 404


async def test_the_log_line_of_an_allowed_call_carries_the_key_id(
    client: Client, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.access")
    key = await new_key(client, admin_key, role="viewer")
    caplog.clear()
    allowed = await hook_get(client, Authorization=f"Bearer {key}")
    await hook_post(client, QUERY, Authorization=f"Bearer {key}")
    await hook_post(client, MUTATION, Authorization=f"Bearer {key}")
    await hook_get(client)
    get_line, post_line, denied_line, anonymous_line = access_lines(caplog)
    assert get_line["key_id"] == post_line["key_id"] == allowed.session["x-hasura-key-id"]
    assert (get_line["status"], post_line["status"]) == (200, 200)
    assert (denied_line["status"], denied_line["reason"]) == (401, "mutation_not_allowed")
    assert "key_id" not in denied_line  # refused before a principal was noted
    assert anonymous_line["status"] == 200
    assert "key_id" not in anonymous_line
    assert key not in json.dumps([get_line, post_line, denied_line])


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "sidecar.access"]


# --- no credentials, X-Hasura-Role ---------------------------------------------------------------


async def test_no_credentials_may_ask_only_for_the_anonymous_role(client: Client) -> None:
    """§4.2: anonymous access is the webhook's 200 with the anonymous role; §1.11: Hasura never
    checks X-Hasura-Role, so asking for any other role without credentials must be a 401."""
    assert (await hook_get(client, **{"X-Hasura-Role": "viewer"})).denied
    assert (await hook_post(client, QUERY, **{"X-Hasura-Role": "viewer"})).denied
    assert (await hook_post(client, v3=True, **{"x-hasura-role": "org_admin"})).denied
    assert (await hook_get(client, **{"X-Hasura-Role": "anonymous"})).role == "anonymous"
    assert (await decisions(client))["deny", "role_not_allowed", "anonymous"] == 3


# --- a session JWT from POST /v1/auth/token -------------------------------------------------------


async def test_a_session_jwt_from_the_token_endpoint(client: Client, admin_key: str, clock: FrozenClock) -> None:
    key = await new_key(client, admin_key, role="manager", org_id="org_acme", team_id="team_9", user_id="u_1")
    validated = await (await client.get("/v1/auth/validate", headers=bearer(key))).json()
    exchanged = await client.post("/v1/auth/token", json={"ttl": 45}, headers=bearer(key))
    assert exchanged.status == 200, await exchanged.text()
    token = (await exchanged.json())["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    view = await hook_get(client, **auth)
    assert view.session == {
        "x-hasura-role": "manager",
        "x-hasura-user-id": "u_1",
        "x-hasura-org-id": "org_acme",
        "x-hasura-team-id": "team_9",
        "x-hasura-key-id": validated["key_id"],
        "x-hasura-environment": "live",
        "x-hasura-permissions": "{orders:read,orders:write,customers:read,customers:write,inventory:read,"
        "inventory:write,returns:read,returns:write,reports:read,settings:write}",
        "cache-control": "max-age=45",
    }
    assert view.max_age == 45  # the token lives 45 s, less than max_cache_age_s (60)
    assert (await hook_post(client, QUERY, v3=True, **auth)).session == view.session

    # role selection: a role the token holds is granted; others are 401 (a manager may act only
    # as anonymous: operator's and viewer's rows reach rows a manager's own does not)
    assert (await hook_post(client, QUERY, **auth, **{"x-hasura-role": "anonymous"})).role == "anonymous"
    for other in ("operator", "viewer", "admin", "org_admin"):
        assert (await hook_get(client, **auth, **{"X-Hasura-Role": other})).denied, other
    admin = await new_key(client, admin_key, role="admin")
    admin_token = (await (await client.post("/v1/auth/token", headers=bearer(admin))).json())["access_token"]
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    assert (await hook_get(client, **as_admin, **{"X-Hasura-Role": "org_admin"})).role == "org_admin"  # Hasura's
    assert (await hook_get(client, **as_admin, **{"X-Hasura-Role": "admin"})).role == "org_admin"  # or ours
    assert (await hook_get(client, **as_admin, **{"X-Hasura-Role": "operator"})).role == "operator"
    assert (await hook_get(client, **as_admin, **{"X-Hasura-Role": "super_admin"})).denied

    clock.advance(40)
    assert (await hook_get(client, **auth)).max_age == 5  # never beyond the token's exp
    clock.advance(5)
    assert (await hook_get(client, **auth)).denied
    counted = await decisions(client)
    assert counted["allow", "session_jwt", "session_jwt"] == 7
    assert counted["deny", "role_not_allowed", "session_jwt"] == 5
    assert counted["deny", "token_expired", "session_jwt"] == 1


async def test_a_session_jwt_never_outlives_max_cache_age(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="viewer")
    token = (await (await client.post("/v1/auth/token", headers=bearer(key))).json())["access_token"]
    assert (await hook_get(client, Authorization=f"Bearer {token}")).max_age == 60


# --- 503: the store unreachable and nothing cached -------------------------------------------------


async def test_503_only_when_the_store_is_unreachable_and_nothing_is_cached(
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    pg_url: str,
    relay: PgRelay,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=relay.url(pg_url), database_timeout_s=2)
    boot = Bootstrap()
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=boot))
    cached = await new_key(client, boot.key, role="viewer")
    assert (await hook_get(client, Authorization=f"Bearer {cached}")).role == "viewer"  # now cached
    never_seen = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "operator", Environment.LIVE))
    caplog.set_level(logging.INFO, logger="sidecar")
    caplog.clear()

    await relay.cut()
    assert (await hook_get(client, Authorization=f"Bearer {cached}")).role == "viewer"
    for resp in (
        await client.get(URL, headers=get_mode_headers({"Authorization": f"Bearer {never_seen}"})),
        await client.post(URL, json=post_v2_body({"Authorization": f"Bearer {never_seen}"}), headers=HASURA_HEADERS),
    ):
        assert resp.status == 503
        assert (await resp.json())["error"] == "SERVICE_UNAVAILABLE"
    assert (await hook_get(client)).role == "anonymous"  # no credentials: nothing to look up

    counted = await decisions(client)
    assert counted["error", "store_unavailable", "api_key"] == 2
    assert counted["allow", "api_key", "api_key"] == 2
    failed = [line for line in access_lines(caplog) if line["status"] == 503]
    assert [(line["route"], line["reason"]) for line in failed] == [(URL, "store_unavailable")] * 2
    errors = [r.getMessage() for r in caplog.records if r.name == "sidecar.web" and r.levelno == logging.ERROR]
    assert errors == [f"request failed: store_unavailable ({URL})"] * 2
    assert never_seen not in caplog.text
