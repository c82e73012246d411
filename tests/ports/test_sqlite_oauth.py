"""The OAuth store contract against SQLite (a real database file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.ports import sqlite, sqlite_oauth
from sidecar.ports.oauth import OAuthStore
from sidecar.ports.sqlite_oauth import SqliteOAuthStore
from tests.ports.oauth_store_contract import CLIENT, OAuthStoreContract


class TestSqliteOAuthStore(OAuthStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[OAuthStore]:
        migrations = (*sqlite.MIGRATIONS, *sqlite_oauth.MIGRATIONS)
        async with sqlite.SqliteDatabase.open(tmp_path / "oauth.db", migrations) as db:
            store = SqliteOAuthStore(db)
            await store.insert_client(CLIENT)
            yield store
