"""One contract for the signing-key stores, run against SQLite and a real PostgreSQL (pgserver)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.models import SigningKeyRecord
from sidecar.ports import SigningKeyStore
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.postgres_signing import MIGRATIONS as PG_MIGRATIONS
from sidecar.ports.postgres_signing import PostgresSigningKeyStore
from sidecar.ports.sqlite import SqliteDatabase
from sidecar.ports.sqlite_signing import MIGRATIONS as SQLITE_MIGRATIONS
from sidecar.ports.sqlite_signing import SqliteSigningKeyStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(activates_in_s: float, kid: str | None = None) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=kid or secrets.token_urlsafe(8),
        algorithm="ES256",
        private_sealed="v1:sealed",
        created_at=T0,
        activates_at=T0 + timedelta(seconds=activates_in_s),
    )


class SigningKeyStoreContract:
    """Written once; each subclass provides the ``store`` fixture."""

    async def test_starts_empty_and_lists_by_activation(self, store: SigningKeyStore) -> None:
        assert await store.list_signing_keys() == []
        later, first = record(300.5, "b"), record(0, "a")
        assert await store.insert_signing_key(later, unless_activating_after=None)
        assert await store.insert_signing_key(first, unless_activating_after=None)
        assert await store.list_signing_keys() == [first, later]

    async def test_first_key_is_created_once(self, store: SigningKeyStore) -> None:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert await store.insert_signing_key(record(0), unless_activating_after=epoch)
        assert not await store.insert_signing_key(record(0), unless_activating_after=epoch)
        assert len(await store.list_signing_keys()) == 1

    async def test_one_rotation_at_a_time(self, store: SigningKeyStore) -> None:
        assert await store.insert_signing_key(record(0), unless_activating_after=None)
        assert await store.insert_signing_key(record(390), unless_activating_after=T0)
        assert not await store.insert_signing_key(record(390), unless_activating_after=T0)
        # once the pending key is active, the next rotation may start
        assert await store.insert_signing_key(record(800), unless_activating_after=T0 + timedelta(seconds=390))
        assert len(await store.list_signing_keys()) == 3


class TestSqliteSigningKeyStore(SigningKeyStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SigningKeyStore]:
        async with SqliteDatabase.open(tmp_path / "keys.db", SQLITE_MIGRATIONS) as db:
            yield SqliteSigningKeyStore(db)


class TestPostgresSigningKeyStore(SigningKeyStoreContract):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[SigningKeyStore]:
        """A real PostgreSQL (the session's pgserver), a schema of this test's own."""
        async with PostgresDatabase.open(pg_url, PG_MIGRATIONS, pool_size=2) as db:
            yield PostgresSigningKeyStore(db)
