"""Hasura events in, signed deliveries out: a real receiving server on 127.0.0.1 verifies every
delivery with Stripe's SDK (or ``standardwebhooks``), fails on cue, and the sidecar restarts midway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks
import stripe
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from sidecar.web.state import SERVICES
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.web.test_hasura_webhook import new_key

Client = TestClient[Any, Any]
EVENTS_SECRET = "hasura-to-sidecar-secret"
HEADER = {"X-Sidecar-Events-Secret": EVENTS_SECRET}


def hasura_event(
    event_id: str = "85558393-c75d-4d2f-9c15-e80591b83894", trigger: str = "orders_insert"
) -> dict[str, Any]:
    """The shape Hasura POSTs (https://hasura.io/docs/latest/event-triggers/payload/)."""
    return {
        "event": {
            "session_variables": {"x-hasura-role": "admin"},
            "op": "INSERT",
            "data": {"old": None, "new": {"id": 7, "org_id": "org_default", "total": "19.99", "note": "café"}},
            "trace_context": {"trace_id": "0f9a", "span_id": "2b1c"},
        },
        "created_at": "2026-12-03T19:00:00.123456Z",
        "id": event_id,
        "delivery_info": {"max_retries": 3, "current_retry": 0},
        "trigger": {"name": trigger},
        "table": {"schema": "public", "name": "orders"},
    }


class Receiver:
    """A webhook receiver that verifies with an independent library and answers from a script."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.secrets: list[str] = []
        self.format = "stateset"
        self.requests: list[tuple[dict[str, str], bytes, bool]] = []
        self.arrived = asyncio.Event()

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets:
            try:
                if self.format == "standard":
                    standardwebhooks.Webhook(secret).verify(body, headers)
                else:
                    stripe.WebhookSignature.verify_header(body, headers["Stateset-Signature"], secret, tolerance=300)
            except (stripe.SignatureVerificationError, standardwebhooks.WebhookVerificationError, KeyError):
                continue
            return True
        return False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        self.requests.append((headers, body, self.verify(headers, body)))
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
def clock() -> FrozenClock:
    # Signatures carry this clock's time and the receiving libraries check it against the real one.
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def receiver_url(receiver: Receiver) -> Any:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/hook"))
    await server.close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        webhook={
            "hasura_events_secret": EVENTS_SECRET,
            "allow_private_urls": True,  # the receiver listens on 127.0.0.1
            "deliver": False,
            "delivery_backoff_base_s": 2,
            "delivery_max_attempts": 4,
        }
    )


StartApp = Callable[[], Awaitable[Client]]


@pytest.fixture
def start_app(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, bootstrap: Bootstrap) -> StartApp:
    async def start() -> Client:
        return await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))

    return start


async def make_endpoint(client: Client, key: str, url: str, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/webhook_endpoints", json={"url": url, **body}, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def send_event(client: Client, event: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/hasura/events", json=event, headers=HEADER)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def deliveries(client: Client, key: str, endpoint_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries", headers=bearer(key))
    assert resp.status == 200
    return list((await resp.json())["data"])


async def run_once(client: Client) -> int:
    return await client.app[SERVICES].deliveries.run_once()


async def test_fails_twice_survives_a_restart_then_delivers_once_signed(
    start_app: StartApp, receiver: Receiver, receiver_url: str, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    receiver.statuses = [500, 503]
    first = await start_app()
    endpoint = await make_endpoint(first, bootstrap.key, receiver_url, events=["orders_insert"])
    receiver.secrets = [endpoint["secret"]]

    assert await send_event(first, hasura_event()) == {
        "event_id": hasura_event()["id"],
        "endpoints": 1,
        "queued": 1,
    }
    assert (await send_event(first, hasura_event()))["queued"] == 0  # Hasura's retry: nothing twice
    assert (await send_event(first, hasura_event("other", trigger="customers_update")))["endpoints"] == 0

    assert await run_once(first) == 1
    assert await run_once(first) == 0  # backing off
    clock.advance(2)
    assert await run_once(first) == 1
    await first.close()  # the sidecar restarts with the delivery still owed

    second = await start_app()
    [pending] = await deliveries(second, bootstrap.key, endpoint["id"])
    assert pending["status"] == "pending"
    assert [a["status_code"] for a in pending["log"]] == [500, 503]
    clock.advance(4)
    assert await run_once(second) == 1

    assert len(receiver.requests) == 3
    assert all(verified for _, _, verified in receiver.requests)
    bodies = {body for _, body, _ in receiver.requests}
    assert len(bodies) == 1
    sent = json.loads(bodies.pop())
    expected = hasura_event()
    del expected["delivery_info"]
    assert sent == expected
    assert len({h["Stateset-Delivery-Id"] for h, _, _ in receiver.requests}) == 1
    assert {h["Stateset-Event-Id"] for h, _, _ in receiver.requests} == {expected["id"]}

    [done] = await deliveries(second, bootstrap.key, endpoint["id"])
    assert done["status"] == "delivered"
    assert done["attempts"] == 3
    assert done["log"][-1]["status_code"] == 200
    clock.advance(3600)
    assert await run_once(second) == 0


async def test_gives_up_after_the_last_attempt(
    start_app: StartApp, receiver: Receiver, receiver_url: str, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    receiver.statuses = [500] * 10
    client = await start_app()
    endpoint = await make_endpoint(client, bootstrap.key, receiver_url)
    await send_event(client, hasura_event())
    for _ in range(4):
        assert await run_once(client) == 1
        clock.advance(60)
    assert await run_once(client) == 0
    [failed] = await deliveries(client, bootstrap.key, endpoint["id"])
    assert failed["status"] == "failed"
    assert failed["attempts"] == 4
    assert failed["last_error"] == "http_500"


async def test_during_a_roll_both_secrets_sign(
    start_app: StartApp, receiver: Receiver, receiver_url: str, bootstrap: Bootstrap
) -> None:
    client = await start_app()
    endpoint = await make_endpoint(client, bootstrap.key, receiver_url, events=["public.orders"])
    resp = await client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/roll_secret", json={"expires_in": 600}, headers=bearer(bootstrap.key)
    )
    receiver.secrets = [endpoint["secret"]]  # a receiver that has not switched yet
    await send_event(client, hasura_event())
    assert await run_once(client) == 1
    [(headers, _, verified)] = receiver.requests
    assert verified
    assert headers["Stateset-Signature"].count("v1=") == 2
    receiver.secrets = [(await resp.json())["secret"]]  # ... and one that has
    assert receiver.verify(headers, receiver.requests[0][1])


async def test_standard_webhooks_endpoint_keeps_its_webhook_id_across_retries(
    start_app: StartApp, receiver: Receiver, receiver_url: str, clock: FrozenClock, bootstrap: Bootstrap
) -> None:
    receiver.statuses = [502]
    receiver.format = "standard"
    client = await start_app()
    endpoint = await make_endpoint(client, bootstrap.key, receiver_url, format="standard")
    receiver.secrets = [endpoint["secret"]]
    await send_event(client, hasura_event())
    await run_once(client)
    clock.advance(2)
    await run_once(client)
    assert [verified for _, _, verified in receiver.requests] == [True, True]
    ids = {h["webhook-id"] for h, _, _ in receiver.requests}
    assert len(ids) == 1
    assert ids.pop().startswith("del_")


async def test_an_unreachable_endpoint_is_retried_with_the_error_logged(
    start_app: StartApp, bootstrap: Bootstrap
) -> None:
    client = await start_app()
    endpoint = await make_endpoint(client, bootstrap.key, "http://127.0.0.1:9/hook")
    await send_event(client, hasura_event())
    assert await run_once(client) == 1
    [delivery] = await deliveries(client, bootstrap.key, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] is None
    assert delivery["last_error"] == "ClientConnectorError"


async def test_the_background_worker_delivers_without_being_asked(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    clock: FrozenClock,
    bootstrap: Bootstrap,
    receiver: Receiver,
    receiver_url: str,
) -> None:
    settings = make_settings(
        webhook={"hasura_events_secret": EVENTS_SECRET, "allow_private_urls": True, "delivery_poll_interval_s": 30}
    )
    client = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    endpoint = await make_endpoint(client, bootstrap.key, receiver_url)
    receiver.secrets = [endpoint["secret"]]
    await send_event(client, hasura_event())
    await asyncio.wait_for(receiver.arrived.wait(), timeout=20)  # woken by the event, not by the poll
    assert receiver.requests[0][2] is True


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-Sidecar-Events-Secret": "wrong"}, 401), ({"X-Sidecar-Events-Secret": EVENTS_SECRET + "x"}, 401)],
)
async def test_the_events_secret_is_required(start_app: StartApp, headers: dict[str, str], status: int) -> None:
    client = await start_app()
    resp = await client.post("/v1/hasura/events", json=hasura_event(), headers=headers)
    assert resp.status == status
    assert (await resp.json())["error"] == "UNAUTHENTICATED"
    assert EVENTS_SECRET not in await resp.text()


async def test_events_are_off_without_a_configured_secret(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    resp = await client.post("/v1/hasura/events", json=hasura_event(), headers=HEADER)
    assert resp.status == 401
    assert "SIDECAR_WEBHOOK__HASURA_EVENTS_SECRET" in (await resp.json())["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x"},
        {**hasura_event(), "event": {"op": "TRUNCATE", "data": {}}},
        {**hasura_event(), "table": {"name": "orders"}},
        [1, 2],
    ],
)
async def test_a_payload_that_is_not_a_hasura_event_is_400(start_app: StartApp, body: Any) -> None:
    client = await start_app()
    resp = await client.post("/v1/hasura/events", json=body, headers=HEADER)
    assert resp.status == 400
    assert (await resp.json())["error"] == "INVALID_REQUEST"


async def test_deliveries_of_an_unknown_endpoint_are_404(client: Client, admin_key: str) -> None:
    resp = await client.get("/v1/webhook_endpoints/we_nope/deliveries", headers=bearer(admin_key))
    assert resp.status == 404


# --- organisations: an event goes only to its row's organisation -----------------------------


def org_event(event_id: str, *, table: str = "orders", old: Any = None, new: Any = None) -> dict[str, Any]:
    event = hasura_event(event_id, trigger="any_trigger")
    event["table"] = {"schema": "public", "name": table}
    event["event"]["op"] = "UPDATE" if old is not None and new is not None else "INSERT"
    event["event"]["data"] = {"old": old, "new": new}
    return event


async def test_an_event_goes_only_to_endpoints_of_its_rows_org(
    start_app: StartApp, receiver_url: str, bootstrap: Bootstrap
) -> None:
    client = await start_app()
    key_a = await new_key(client, bootstrap.key, role="admin", org_id="org_a")
    key_b = await new_key(client, bootstrap.key, role="admin", org_id="org_b")
    # each org admin subscribes to everything; the super admin makes one endpoint of every org
    in_a = (await make_endpoint(client, key_a, receiver_url, events=["*"]))["id"]
    in_b = (await make_endpoint(client, key_b, receiver_url, events=["*"]))["id"]
    everywhere = (await make_endpoint(client, bootstrap.key, receiver_url, all_orgs=True))["id"]

    cases = {
        "row-of-a": (org_event("e1", new={"id": 1, "org_id": "org_a"}), {in_a, everywhere}),
        "row-of-b": (org_event("e2", old={"id": 2, "org_id": "org_b"}), {in_b, everywhere}),
        "stays-in-a": (
            org_event("e3", old={"id": 3, "org_id": "org_a"}, new={"id": 3, "org_id": "org_a", "n": 1}),
            {in_a, everywhere},
        ),
        # a row moved between orgs would show each org the other's data: every-org endpoints only
        "moved-a-to-b": (
            org_event("e4", old={"id": 4, "org_id": "org_a"}, new={"id": 4, "org_id": "org_b"}),
            {everywhere},
        ),
        "no-org-value": (org_event("e5", new={"id": 5}), {everywhere}),
        "null-org-value": (org_event("e6", new={"id": 6, "org_id": None}), {everywhere}),
        "not-a-string": (org_event("e7", new={"id": 7, "org_id": ["org_a"]}), {everywhere}),
        # a table tables.yaml does not list has no known org column
        "unlisted-table": (org_event("e8", table="audit_log", new={"id": 8, "org_id": "org_a"}), {everywhere}),
    }
    for name, (event, expected) in cases.items():
        result = await send_event(client, event)
        assert result["endpoints"] == len(expected), name
        got = {
            endpoint
            for endpoint in (in_a, in_b, everywhere)
            if any(d["event_id"] == event["id"] for d in await deliveries(client, bootstrap.key, endpoint))
        }
        assert got == expected, name


async def test_an_integer_org_column_matches_the_org_id_as_text(
    start_app: StartApp, receiver_url: str, bootstrap: Bootstrap
) -> None:
    client = await start_app()
    key = await new_key(client, bootstrap.key, role="admin", org_id="42")
    endpoint = (await make_endpoint(client, key, receiver_url))["id"]
    assert (await send_event(client, org_event("e1", new={"id": 1, "org_id": 42})))["endpoints"] == 1
    assert (await send_event(client, org_event("e2", new={"id": 2, "org_id": True})))["endpoints"] == 0
    [delivery] = await deliveries(client, key, endpoint)
    assert delivery["event_id"] == "e1"


# --- SSRF: private addresses are refused unless allowed ---------------------------------------


@pytest.fixture
def strict_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook={"hasura_events_secret": EVENTS_SECRET, "deliver": False})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://localhost:9000/hook",
        "http://api.localhost/hook",
    ],
)
async def test_private_urls_are_refused_by_default(
    aiohttp_client: ClientFactory,
    strict_settings: Settings,
    clock: FrozenClock,
    bootstrap: Bootstrap,
    url: str,
) -> None:
    client = await aiohttp_client(create_app(strict_settings, clock=clock, on_bootstrap=bootstrap))
    resp = await client.post("/v1/webhook_endpoints", json={"url": url}, headers=bearer(bootstrap.key))
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["error"] == "INVALID_REQUEST"
    assert "SIDECAR_WEBHOOK__ALLOW_PRIVATE_URLS" in body["message"]
    created = await make_endpoint(client, bootstrap.key, "https://hooks.example.com/x")
    resp = await client.post(f"/v1/webhook_endpoints/{created['id']}", json={"url": url}, headers=bearer(bootstrap.key))
    assert resp.status == 400


async def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
    aiohttp_client: ClientFactory,
    strict_settings: Settings,
    clock: FrozenClock,
    bootstrap: Bootstrap,
    receiver: Receiver,
    receiver_url: str,
) -> None:
    """A host name passes the URL check (unless it is a localhost name); what it resolves to is
    checked as the connection is made. These endpoints were stored while private URLs were allowed
    (a name that resolves to 127.0.0.1, and the literal address); after a restart with them
    refused, neither is delivered to."""
    allowing = strict_settings.model_copy(
        update={"webhook": strict_settings.webhook.model_copy(update={"allow_private_urls": True})}
    )
    first = await aiohttp_client(create_app(allowing, clock=clock, on_bootstrap=bootstrap))
    by_name = receiver_url.replace("127.0.0.1", "localhost")
    endpoint = await make_endpoint(first, bootstrap.key, by_name)
    literal = await make_endpoint(first, bootstrap.key, receiver_url)
    await first.close()

    client = await aiohttp_client(create_app(strict_settings, clock=clock, on_bootstrap=bootstrap))
    await send_event(client, hasura_event())
    assert await run_once(client) == 2
    assert receiver.requests == []  # nothing reached the receiver on 127.0.0.1
    for made in (endpoint, literal):
        [delivery] = await deliveries(client, bootstrap.key, made["id"])
        assert (delivery["status"], delivery["last_error"]) == ("pending", "address_not_allowed")
