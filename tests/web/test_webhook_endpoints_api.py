"""``/v1/webhook_endpoints`` over real HTTP: secrets shown once, rolled with an overlap, admin only,
each organisation's endpoints its own."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe
from aiohttp.test_utils import TestClient

from sidecar.domain import signatures
from sidecar.ports.clock import FrozenClock
from sidecar.web.state import SERVICES
from tests.conftest import bearer
from tests.web.test_hasura_webhook import new_key

Client = TestClient[Any, Any]
URL = "https://hooks.example.com/stateset"


async def create(client: Client, key: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/webhook_endpoints", json={"url": URL, **body}, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def test_create_shows_the_secret_once(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key, events=["orders_insert", "public.orders"], description="ERP")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["id"].startswith("we_")
    assert created["events"] == ["orders_insert", "public.orders"]
    assert created["format"] == "stateset"
    assert created["enabled"] is True
    assert len(created["secrets"]) == 1
    shown = await client.get(f"/v1/webhook_endpoints/{created['id']}", headers=bearer(admin_key))
    listed = await client.get("/v1/webhook_endpoints", headers=bearer(admin_key))
    for resp in (shown, listed):
        assert resp.status == 200
        assert secret not in await resp.text()
        assert secret.removeprefix("whsec_") not in await resp.text()
    assert (await listed.json())["data"][0]["id"] == created["id"]


async def test_list_pages_newest_first(client: Client, admin_key: str, clock: FrozenClock) -> None:
    ids = []
    for _ in range(3):
        ids.append((await create(client, admin_key))["id"])
        clock.advance(1)
    first = await (await client.get("/v1/webhook_endpoints?limit=2", headers=bearer(admin_key))).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = await client.get(f"/v1/webhook_endpoints?limit=2&starting_after={ids[1]}", headers=bearer(admin_key))
    body = await rest.json()
    assert [e["id"] for e in body["data"]] == [ids[0]]
    assert body["has_more"] is False


async def test_update_and_delete(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key)
    path = f"/v1/webhook_endpoints/{created['id']}"
    resp = await client.post(path, json={"enabled": False, "format": "standard"}, headers=bearer(admin_key))
    assert resp.status == 200
    assert (await resp.json())["enabled"] is False
    assert (await resp.json())["format"] == "standard"
    resp = await client.delete(path, headers=bearer(admin_key))
    assert resp.status == 200
    assert (await resp.json())["deleted"] is True
    for method in (client.get, client.delete):
        resp = await method(path, headers=bearer(admin_key))
        assert resp.status == 404
        assert (await resp.json())["error"] == "NOT_FOUND"


async def test_roll_secret_both_sign_during_the_overlap(client: Client, admin_key: str, clock: FrozenClock) -> None:
    created = await create(client, admin_key)
    old = created["secret"]
    resp = await client.post(
        f"/v1/webhook_endpoints/{created['id']}/roll_secret", json={"expires_in": 3600}, headers=bearer(admin_key)
    )
    assert resp.status == 201
    rolled = await resp.json()
    new = rolled["secret"]
    assert new != old
    assert [s["expires_at"] is None for s in rolled["secrets"]] == [True, False]

    service = client.app[SERVICES].webhook_endpoints
    endpoint = await service.get(created["id"], viewer=None)
    assert endpoint.signing_secrets(clock.now()) == (new, old)
    body = b'{"event":{}}'
    header = signatures.stateset_header(body, endpoint.signing_secrets(clock.now()), timestamp=int(time.time()))
    assert header.count("v1=") == 2
    for secret in (old, new):
        assert stripe.WebhookSignature.verify_header(body, header, secret, tolerance=300)

    clock.advance(3601)
    assert endpoint.signing_secrets(clock.now()) == (new,)
    shown = await client.get(f"/v1/webhook_endpoints/{created['id']}", headers=bearer(admin_key))
    assert len((await shown.json())["secrets"]) == 1


async def test_roll_without_overlap_retires_the_old_secret_at_once(
    client: Client, admin_key: str, clock: FrozenClock
) -> None:
    created = await create(client, admin_key)
    resp = await client.post(
        f"/v1/webhook_endpoints/{created['id']}/roll_secret", json={"expires_in": 0}, headers=bearer(admin_key)
    )
    rolled = await resp.json()
    endpoint = await client.app[SERVICES].webhook_endpoints.get(created["id"], viewer=None)
    assert endpoint.signing_secrets(clock.now()) == (rolled["secret"],)


async def test_default_overlap_is_a_day(client: Client, admin_key: str, clock: FrozenClock) -> None:
    created = await create(client, admin_key)
    resp = await client.post(f"/v1/webhook_endpoints/{created['id']}/roll_secret", headers=bearer(admin_key))
    assert resp.status == 201
    endpoint = await client.app[SERVICES].webhook_endpoints.get(created["id"], viewer=None)
    clock.advance(86_399)
    assert len(endpoint.signing_secrets(clock.now())) == 2
    clock.advance(2)
    assert len(endpoint.signing_secrets(clock.now())) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "https://user:pw@example.com/"},
        {"url": "http://[::1/hook"},
        {"url": "https://example.com:99999/"},
        {"url": "http://169.254.169.254/latest/meta-data/"},
        {"url": URL, "events": []},
        {"url": URL, "events": ["drop table;"]},
        {"url": URL, "format": "xml"},
        {"url": URL, "secret": "whsec_mine"},
    ],
)
async def test_bad_bodies_are_400(client: Client, admin_key: str, body: dict[str, Any]) -> None:
    resp = await client.post("/v1/webhook_endpoints", json=body, headers=bearer(admin_key))
    assert resp.status == 400
    assert (await resp.json())["error"] == "INVALID_REQUEST"


async def test_bad_overlap_is_400(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key)
    resp = await client.post(
        f"/v1/webhook_endpoints/{created['id']}/roll_secret", json={"expires_in": -1}, headers=bearer(admin_key)
    )
    assert resp.status == 400


async def test_admin_scope_is_required(client: Client, admin_key: str) -> None:
    resp = await client.post("/v1/api_keys", json={"role": "operator"}, headers=bearer(admin_key))
    operator = (await resp.json())["key"]
    resp = await client.get("/v1/webhook_endpoints", headers=bearer(operator))
    assert resp.status == 403
    assert (await resp.json())["error"] == "INSUFFICIENT_PERMISSIONS"
    resp = await client.post("/v1/webhook_endpoints", json={"url": URL})
    assert resp.status == 401


# --- organisations ----------------------------------------------------------------------------


async def org_admin(client: Client, super_key: str, org_id: str) -> str:
    """An ``admin`` key of ``org_id``: the admin scope, but not ``system:orgs``."""
    return await new_key(client, super_key, role="admin", org_id=org_id)


async def test_an_org_admin_creates_in_its_own_org(client: Client, admin_key: str) -> None:
    key_a = await org_admin(client, admin_key, "org_a")
    created = await create(client, key_a)
    assert created["org_id"] == "org_a"
    assert created["all_orgs"] is False
    assert (await create(client, key_a, org_id="org_a"))["org_id"] == "org_a"


@pytest.mark.parametrize("body", [{"org_id": "org_b"}, {"all_orgs": True}])
async def test_an_org_admin_cannot_create_for_another_org_or_every_org(
    client: Client, admin_key: str, body: dict[str, Any]
) -> None:
    key_a = await org_admin(client, admin_key, "org_a")
    resp = await client.post("/v1/webhook_endpoints", json={"url": URL, **body}, headers=bearer(key_a))
    assert resp.status == 403
    error = await resp.json()
    assert error["error"] == "INSUFFICIENT_PERMISSIONS"
    assert "system:orgs" in error["message"]
    listed = await client.get("/v1/webhook_endpoints", headers=bearer(admin_key))
    assert (await listed.json())["data"] == []


async def test_another_orgs_endpoint_is_invisible_and_untouchable(client: Client, admin_key: str) -> None:
    key_a, key_b = await org_admin(client, admin_key, "org_a"), await org_admin(client, admin_key, "org_b")
    theirs = await create(client, key_a)
    mine = await create(client, key_b)
    path = f"/v1/webhook_endpoints/{theirs['id']}"
    attempts = [
        client.get(path, headers=bearer(key_b)),
        client.post(path, json={"url": "https://evil.example.com/"}, headers=bearer(key_b)),
        client.post(f"{path}/roll_secret", json={"expires_in": 0}, headers=bearer(key_b)),
        client.get(f"{path}/deliveries", headers=bearer(key_b)),
        client.delete(path, headers=bearer(key_b)),
    ]
    for attempt in attempts:
        resp = await attempt
        assert resp.status == 404, await resp.text()
        assert (await resp.json())["error"] == "NOT_FOUND"
    listed = await (await client.get("/v1/webhook_endpoints", headers=bearer(key_b))).json()
    assert [e["id"] for e in listed["data"]] == [mine["id"]]
    # untouched: the owner still sees it as it was, with its one secret
    shown = await (await client.get(path, headers=bearer(key_a))).json()
    assert (shown["url"], len(shown["secrets"])) == (URL, 1)
    assert (await client.get(f"{path}/deliveries", headers=bearer(key_a))).status == 200


async def test_system_orgs_sees_every_org_and_makes_every_org_endpoints(client: Client, admin_key: str) -> None:
    key_a = await org_admin(client, admin_key, "org_a")
    in_a = await create(client, key_a)
    in_b = await create(client, admin_key, org_id="org_b")
    everywhere = await create(client, admin_key, all_orgs=True)
    assert (in_b["org_id"], everywhere["org_id"], everywhere["all_orgs"]) == ("org_b", None, True)
    listed = await (await client.get("/v1/webhook_endpoints", headers=bearer(admin_key))).json()
    assert {e["id"] for e in listed["data"]} == {in_a["id"], in_b["id"], everywhere["id"]}
    resp = await client.post(
        f"/v1/webhook_endpoints/{in_a['id']}/roll_secret", json={"expires_in": 0}, headers=bearer(admin_key)
    )
    assert resp.status == 201
    # an endpoint of every organisation belongs to no org admin, not even the creator's org's
    resp = await client.get(f"/v1/webhook_endpoints/{everywhere['id']}", headers=bearer(key_a))
    assert resp.status == 404
    listed = await (await client.get("/v1/webhook_endpoints", headers=bearer(key_a))).json()
    assert [e["id"] for e in listed["data"]] == [in_a["id"]]


async def test_org_id_and_all_orgs_together_are_400(client: Client, admin_key: str) -> None:
    resp = await client.post(
        "/v1/webhook_endpoints", json={"url": URL, "org_id": "org_a", "all_orgs": True}, headers=bearer(admin_key)
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "INVALID_REQUEST"
