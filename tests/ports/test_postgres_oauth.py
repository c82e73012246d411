"""The OAuth store contract against a real PostgreSQL: ``DATABASE_URL``, else a pgserver of our own.

pgserver listens on a unix socket only; running as root it runs the server as the system user
``pgserver``, which cannot enter pytest's private temp dirs, hence a directory under /tmp.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from sidecar.ports import postgres, postgres_oauth
from sidecar.ports.oauth import OAuthStore
from sidecar.ports.postgres_oauth import PostgresOAuthStore
from tests.ports.oauth_store_contract import CLIENT, OAuthStoreContract


@pytest.fixture(scope="module")
def oauth_pg_server() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="sidecar-oauth-pg-"), cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture
async def oauth_pg_url(oauth_pg_server: str) -> AsyncIterator[str]:
    """A URL whose tables live in a fresh schema, dropped after the test."""

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(oauth_pg_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    schema = f"oauth_{secrets.token_hex(6)}"
    await admin(f"CREATE SCHEMA {schema}")
    parts = urlsplit(oauth_pg_server)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", schema)]
    yield urlunsplit(parts._replace(query=urlencode(query)))
    await admin(f"DROP SCHEMA {schema} CASCADE")


class TestPostgresOAuthStore(OAuthStoreContract):
    @pytest.fixture
    async def store(self, oauth_pg_url: str) -> AsyncIterator[OAuthStore]:
        migrations = (*postgres.MIGRATIONS, *postgres_oauth.MIGRATIONS)
        async with postgres.PostgresDatabase.open(oauth_pg_url, migrations, pool_size=4) as db:
            store = PostgresOAuthStore(db)
            await store.insert_client(CLIENT)
            yield store
