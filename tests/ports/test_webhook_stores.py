"""Both webhook store adapters, one suite: SQLite, and PostgreSQL on the session's real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.domain.signatures import new_secret
from sidecar.ports import DeliveryStore, WebhookEndpointStore
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.postgres_webhooks import MIGRATIONS as PG_MIGRATIONS
from sidecar.ports.postgres_webhooks import PostgresWebhookStore
from sidecar.ports.sealer import Sealer
from sidecar.ports.sqlite import SqliteDatabase
from sidecar.ports.sqlite_webhooks import MIGRATIONS as SQLITE_MIGRATIONS
from sidecar.ports.sqlite_webhooks import SqliteWebhookStore
from sidecar.webhook_models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointSecret,
    SignatureFormat,
    WebhookEndpoint,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SEALER = Sealer(b"k" * 32)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> AsyncIterator[WebhookEndpointStore]:
    if request.param == "sqlite":
        async with SqliteDatabase.open(tmp_path / "db.sqlite", SQLITE_MIGRATIONS) as db:
            yield SqliteWebhookStore(db, SEALER)
        return
    async with PostgresDatabase.open(pg_url, PG_MIGRATIONS, pool_size=2) as pg:
        yield PostgresWebhookStore(pg, SEALER)


def endpoint(
    endpoint_id: str, secret: str, *, at: datetime = NOW, enabled: bool = True, org_id: str | None = "org_a"
) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=endpoint_id,
        url="https://example.com/hook",
        events=("orders_insert", "public.orders"),
        format=SignatureFormat.STANDARD,
        enabled=enabled,
        description="ERP",
        created_at=at,
        org_id=org_id,
        secrets=(EndpointSecret(secret, at),),
    )


async def test_insert_get_list_update_delete(store: WebhookEndpointStore) -> None:
    secrets = [new_secret() for _ in range(3)]
    for i, secret in enumerate(secrets):
        await store.insert_endpoint(endpoint(f"we_{i}", secret, at=NOW + timedelta(seconds=i), enabled=i != 1))
    assert await store.get_endpoint("we_0") == endpoint("we_0", secrets[0])
    assert await store.get_endpoint("we_none") is None
    page = await store.list_endpoints(org_id=None, limit=2, starting_after=None)
    assert [e.id for e in page.data] == ["we_2", "we_1"]
    assert page.has_more
    rest = await store.list_endpoints(org_id=None, limit=2, starting_after="we_1")
    assert [e.id for e in rest.data] == ["we_0"]
    assert not rest.has_more
    assert (await store.list_endpoints(org_id=None, limit=2, starting_after="we_gone")).data == []
    assert [e.id for e in await store.list_enabled_endpoints()] == ["we_0", "we_2"]
    changed = endpoint("we_0", secrets[0], enabled=False)
    await store.update_endpoint(changed)
    assert await store.get_endpoint("we_0") == changed
    assert await store.delete_endpoint("we_0") is True
    assert await store.delete_endpoint("we_0") is False
    assert await store.get_endpoint("we_0") is None


async def test_endpoints_keep_their_org_and_list_by_org(store: WebhookEndpointStore) -> None:
    orgs = ["org_a", "org_b", None, "org_a", "org_b"]
    for i, org in enumerate(orgs):
        await store.insert_endpoint(endpoint(f"we_{i}", new_secret(), at=NOW + timedelta(seconds=i), org_id=org))
    found = await store.get_endpoint("we_2")
    assert found is not None
    assert (found.org_id, found.all_orgs) == (None, True)
    every = await store.list_endpoints(org_id=None, limit=10, starting_after=None)
    assert [e.id for e in every.data] == ["we_4", "we_3", "we_2", "we_1", "we_0"]
    first = await store.list_endpoints(org_id="org_a", limit=1, starting_after=None)
    assert ([e.id for e in first.data], first.has_more) == (["we_3"], True)
    rest = await store.list_endpoints(org_id="org_a", limit=1, starting_after="we_3")
    assert ([e.id for e in rest.data], rest.has_more) == (["we_0"], False)
    assert [e.org_id for e in (await store.list_endpoints(org_id="org_b", limit=10, starting_after=None)).data] == [
        "org_b",
        "org_b",
    ]
    assert (await store.list_endpoints(org_id="org_c", limit=10, starting_after=None)).data == []
    # an update never moves an endpoint to another org
    moved = endpoint("we_0", new_secret(), org_id="org_b")
    await store.update_endpoint(moved)
    still = await store.get_endpoint("we_0")
    assert still is not None
    assert still.org_id == "org_a"


async def test_roll_expires_current_secrets_and_drops_expired_ones(store: WebhookEndpointStore) -> None:
    first, second, third = new_secret(), new_secret(), new_secret()
    await store.insert_endpoint(endpoint("we_1", first))
    later = NOW + timedelta(hours=1)
    await store.roll_secret("we_1", EndpointSecret(second, later), later + timedelta(hours=2))
    found = await store.get_endpoint("we_1")
    assert found is not None
    assert found.signing_secrets(later) == (second, first)
    much_later = NOW + timedelta(days=1)
    await store.roll_secret("we_1", EndpointSecret(third, much_later), much_later + timedelta(hours=1))
    found = await store.get_endpoint("we_1")
    assert found is not None
    assert [s.secret for s in found.secrets] == [third, second]  # the expired first one is gone


# --- the delivery outbox ----------------------------------------------------------------------


def delivery(delivery_id: str, event_id: str, *, at: datetime = NOW) -> Delivery:
    return Delivery(
        id=delivery_id,
        endpoint_id="we_1",
        event_id=event_id,
        trigger="orders_insert",
        table="public.orders",
        op="INSERT",
        body=b'{"id":"' + event_id.encode() + b'","caf\xc3\xa9":1}',
        created_at=at,
        next_attempt_at=at,
    )


@pytest.fixture
async def outbox(store: WebhookEndpointStore) -> DeliveryStore:
    await store.insert_endpoint(endpoint("we_1", new_secret()))
    assert isinstance(store, SqliteWebhookStore | PostgresWebhookStore)
    return store


async def test_enqueue_skips_an_event_already_queued_for_the_endpoint(outbox: DeliveryStore) -> None:
    assert await outbox.enqueue([delivery("del_1", "evt_1"), delivery("del_2", "evt_2")]) == 2
    assert await outbox.enqueue([delivery("del_3", "evt_1")]) == 0
    assert await outbox.get_delivery("del_1") == delivery("del_1", "evt_1")
    assert await outbox.get_delivery("del_3") is None


async def test_claim_leases_due_deliveries_once(outbox: DeliveryStore) -> None:
    await outbox.enqueue([delivery("del_1", "evt_1"), delivery("del_2", "evt_2", at=NOW + timedelta(seconds=60))])
    lease = NOW + timedelta(seconds=40)
    claimed = await outbox.claim_due(NOW, lease_until=lease, limit=10)
    assert [d.id for d in claimed] == ["del_1"]
    assert await outbox.claim_due(NOW + timedelta(seconds=30), lease_until=lease, limit=10) == []
    # a worker that died mid-attempt: its lease runs out and the delivery is due again
    later = await outbox.claim_due(NOW + timedelta(seconds=61), lease_until=NOW + timedelta(seconds=100), limit=10)
    assert sorted(d.id for d in later) == ["del_1", "del_2"]


async def test_attempts_are_logged_and_move_the_delivery_on(outbox: DeliveryStore) -> None:
    await outbox.enqueue([delivery("del_1", "evt_1")])
    retry_at = NOW + timedelta(seconds=5)
    await outbox.record_attempt(
        DeliveryAttempt("del_1", 1, NOW, 503, "http_503", 12), status=DeliveryStatus.PENDING, next_attempt_at=retry_at
    )
    pending = await outbox.get_delivery("del_1")
    assert pending is not None
    assert (pending.status, pending.attempts, pending.next_attempt_at) == (DeliveryStatus.PENDING, 1, retry_at)
    await outbox.record_attempt(
        DeliveryAttempt("del_1", 2, retry_at, 200, None, 8), status=DeliveryStatus.DELIVERED, next_attempt_at=None
    )
    done = await outbox.get_delivery("del_1")
    assert done is not None
    assert (done.status, done.attempts, done.delivered_at, done.last_status_code) == (
        DeliveryStatus.DELIVERED,
        2,
        retry_at,
        200,
    )
    assert await outbox.claim_due(NOW + timedelta(days=1), lease_until=NOW + timedelta(days=2), limit=10) == []
    log = await outbox.list_attempts(["del_1", "del_none"])
    assert [a.status_code for a in log["del_1"]] == [503, 200]
    assert log["del_none"] == []


async def test_deliveries_list_newest_first_in_pages(outbox: DeliveryStore) -> None:
    await outbox.enqueue([delivery(f"del_{i}", f"evt_{i}", at=NOW + timedelta(seconds=i)) for i in range(3)])
    page = await outbox.list_deliveries("we_1", limit=2, starting_after=None)
    assert [d.id for d in page.data] == ["del_2", "del_1"]
    assert page.has_more
    rest = await outbox.list_deliveries("we_1", limit=2, starting_after="del_1")
    assert [d.id for d in rest.data] == ["del_0"]
    assert not rest.has_more


# --- migration 3: endpoints made before orgs -----------------------------------------------------

LEGACY_INSERT = "INSERT INTO webhook_endpoints (id, url, events, format, enabled, description, created_at)"
LEGACY_ROW = ("we_old", "https://example.com/old", '["*"]', "stateset", "ERP", 1767225600.0)


@pytest.mark.parametrize("adapter", ["sqlite", "postgres"])
async def test_endpoints_made_before_orgs_become_every_org_endpoints_switched_off(
    adapter: str, tmp_path: Path, pg_url: str
) -> None:
    """They used to receive every organisation's events: they keep no org (so only ``system:orgs``
    sees them) and are switched off until such an operator re-enables or recreates them."""
    before = tuple(m for m in (SQLITE_MIGRATIONS if adapter == "sqlite" else PG_MIGRATIONS) if m.version < 3)
    found: WebhookEndpoint | None
    if adapter == "sqlite":
        path = tmp_path / "db.sqlite"
        async with SqliteDatabase.open(path, before) as db:
            await db.connection.execute(LEGACY_INSERT + " VALUES (?, ?, ?, ?, 1, ?, ?)", LEGACY_ROW)
            await db.connection.commit()
        async with SqliteDatabase.open(path, SQLITE_MIGRATIONS) as db:
            found = await SqliteWebhookStore(db, SEALER).get_endpoint("we_old")
    else:
        async with PostgresDatabase.open(pg_url, before, pool_size=1) as pg, pg.connection() as conn:
            await conn.execute(LEGACY_INSERT + " VALUES ($1, $2, $3, $4, TRUE, $5, $6)", *LEGACY_ROW)
        async with PostgresDatabase.open(pg_url, PG_MIGRATIONS, pool_size=1) as pg:
            found = await PostgresWebhookStore(pg, SEALER).get_endpoint("we_old")
    assert found is not None
    assert (found.org_id, found.enabled, found.url) == (None, False, "https://example.com/old")
