"""The PostgreSQL key store against the KeyStore contract, on a real server the session starts.

Plus what only a shared server has: replicas migrating at once, and the database going away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import POSTGRES_MIGRATIONS, create_app, open_stores
from sidecar.errors import Unavailable
from sidecar.ports import KeyStore
from sidecar.ports.clock import FrozenClock
from sidecar.ports.migrations import Migration
from sidecar.ports.postgres import MIGRATIONS, PostgresDatabase, PostgresKeyStore
from sidecar.ports.postgres_key_scopes import MIGRATIONS as KEY_SCOPE_MIGRATIONS
from sidecar.settings import Settings
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.contracts import KeyStoreContract, ScopeReader, make_record
from tests.ports.pgproxy import PgRelay


class TestPostgresKeyStore(KeyStoreContract):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[KeyStore]:
        async with PostgresDatabase.open(pg_url, POSTGRES_MIGRATIONS, pool_size=4) as database:
            yield PostgresKeyStore(database)

    @pytest.fixture
    def key_scopes(self, pg_url: str) -> ScopeReader:
        async def read(key_id: str) -> set[str]:
            conn = await asyncpg.connect(pg_url)
            try:
                rows = await conn.fetch("SELECT scope FROM api_key_scopes WHERE key_id = $1", key_id)
            finally:
                await conn.close()
            return {r["scope"] for r in rows}

        return read


async def _terminate_other_backends(server_url: str) -> int:
    """What a failover or an operator's restart looks like to us: every connection dropped."""
    admin = await asyncpg.connect(server_url)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'"
            )
        )
    finally:
        await admin.close()


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    extra = Migration("widgets", 1, "CREATE TABLE widgets (id TEXT PRIMARY KEY)")
    slow = Migration("widgets", 2, "ALTER TABLE widgets ADD COLUMN n INTEGER; SELECT pg_sleep(0.05)")

    async def replica() -> int:
        async with PostgresDatabase.open(pg_url, (*MIGRATIONS, extra, slow), pool_size=2) as db:
            return await PostgresKeyStore(db).count_keys()

    assert await asyncio.gather(*(replica() for _ in range(4))) == [0, 0, 0, 0]
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT component, version FROM schema_migrations ORDER BY 1, 2")
        assert [tuple(r) for r in rows] == [("api_keys", 1), ("api_keys", 2), ("widgets", 1), ("widgets", 2)]
    finally:
        await conn.close()


async def test_migrations_may_outlast_the_request_timeout(pg_url: str) -> None:
    slow = Migration("slow", 1, "SELECT pg_sleep(0.4)")

    async def replica() -> None:
        async with PostgresDatabase.open(pg_url, (*MIGRATIONS, slow), timeout_s=0.2):
            pass

    await asyncio.gather(replica(), replica())


async def test_migrations_are_idempotent_and_keep_data(pg_url: str) -> None:
    async with PostgresDatabase.open(pg_url) as db:
        await PostgresKeyStore(db).insert_key(make_record(1))
    async with PostgresDatabase.open(pg_url) as db:
        assert await PostgresKeyStore(db).get_key("key_000001") == make_record(1)


async def test_keys_made_before_token_ends_were_recorded_count_as_having_tokens_for_ever(pg_url: str) -> None:
    async with PostgresDatabase.open(pg_url, (MIGRATIONS[0], *KEY_SCOPE_MIGRATIONS)) as db:
        await PostgresKeyStore(db).insert_key(make_record(1))
    async with PostgresDatabase.open(pg_url) as db:
        store = PostgresKeyStore(db)
        assert await store.key_tokens_until("key_000001") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        await store.insert_key(make_record(2))
        assert await store.key_tokens_until("key_000002") is None


async def test_a_failing_migration_applies_nothing(pg_url: str) -> None:
    broken = Migration("zz_broken", 1, "CREATE TABLE half (id TEXT); SELECT no_such_function()")
    with pytest.raises(asyncpg.PostgresError):
        async with PostgresDatabase.open(pg_url, (*MIGRATIONS, broken)):
            pass
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT to_regclass('api_keys')") is None
    finally:
        await conn.close()


async def test_both_url_schemes_open_the_store(pg_url: str) -> None:
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        async with open_stores(url, pool_size=2) as stores:
            assert await stores.keys.count_keys() == 0


async def test_a_server_that_is_not_there_is_unavailable(tmp_path: Path) -> None:
    url = f"postgresql://postgres@/postgres?host={tmp_path}"  # a socket directory with no server in it
    with pytest.raises(Unavailable) as caught:
        async with PostgresDatabase.open(url, timeout_s=2):
            pass
    assert caught.value.reason == "store_unavailable"
    assert caught.value.status == 503


async def test_dropped_connections_cost_at_most_one_503(pg_url: str, pg_server_url: str) -> None:
    async with PostgresDatabase.open(pg_url, pool_size=1) as db:
        store = PostgresKeyStore(db)
        await store.insert_key(make_record(1))
        assert await _terminate_other_backends(pg_server_url) >= 1
        with contextlib.suppress(Unavailable):  # whether the first call sees the hang-up is a race
            await store.ping()
        assert await store.get_key("key_000001") == make_record(1)


async def test_a_database_that_goes_away_is_unavailable_until_it_returns(pg_url: str, relay: PgRelay) -> None:
    async with PostgresDatabase.open(relay.url(pg_url), pool_size=2, timeout_s=2) as db:
        store = PostgresKeyStore(db)
        await store.insert_key(make_record(1))
        await relay.cut()
        for call in (store.ping(), store.get_key_by_digest(make_record(1).digest), store.insert_key(make_record(2))):
            with pytest.raises(Unavailable) as caught:
                await call
            assert caught.value.reason == "store_unavailable"
        await relay.start()
        assert await store.get_key("key_000001") == make_record(1)


async def test_a_closed_pool_is_unavailable(pg_url: str) -> None:
    async with PostgresDatabase.open(pg_url) as db:
        store = PostgresKeyStore(db)
    with pytest.raises(Unavailable):
        await store.ping()


async def test_the_app_answers_503_json_while_postgres_is_away(
    pg_url: str, relay: PgRelay, aiohttp_client: ClientFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    bootstrap = Bootstrap()
    settings = Settings(data_dir=tmp_path / "data", database_url=relay.url(pg_url), database_timeout_s=2)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))
    admin = bearer(bootstrap.key)
    created = await client.post("/v1/api_keys", json={"name": "pg"}, headers=admin)
    assert created.status == 201
    key = (await created.json())["key"]
    assert (await client.get("/v1/auth/validate", headers=bearer(key))).status == 200
    assert not (tmp_path / "data" / "sidecar.db").exists()

    await relay.cut()
    for resp in (
        await client.post("/v1/api_keys", json={}, headers=admin),  # the admin key itself is cached
        await client.get("/v1/api_keys", headers=admin),
    ):
        assert resp.status == 503
        body = await resp.json()
        assert body["error"] == "SERVICE_UNAVAILABLE"
        assert "unavailable" in body["message"]

    await relay.start()
    assert (await client.get("/v1/api_keys", headers=admin)).status == 200


async def test_a_migration_listed_twice_runs_once(pg_url: str) -> None:
    async with PostgresDatabase.open(pg_url, (*MIGRATIONS, *MIGRATIONS)) as db:
        assert await PostgresKeyStore(db).count_keys() == 0


async def test_two_different_migrations_with_one_version_are_refused(pg_url: str) -> None:
    clash = Migration("api_keys", 1, "CREATE TABLE other (id TEXT)")
    with pytest.raises(ValueError, match="api_keys version 1"):
        async with PostgresDatabase.open(pg_url, (*MIGRATIONS, clash)):
            pass
