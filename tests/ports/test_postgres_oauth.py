"""The OAuth store contract against a real PostgreSQL (the session's server, a fresh schema per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.ports import postgres, postgres_oauth
from sidecar.ports.oauth import OAuthStore
from sidecar.ports.postgres_oauth import PostgresOAuthStore
from tests.ports.oauth_store_contract import CLIENT, OAuthStoreContract


class TestPostgresOAuthStore(OAuthStoreContract):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[OAuthStore]:
        migrations = (*postgres.MIGRATIONS, *postgres_oauth.MIGRATIONS)
        async with postgres.PostgresDatabase.open(pg_url, migrations, pool_size=4) as db:
            store = PostgresOAuthStore(db)
            await store.insert_client(CLIENT)
            yield store
