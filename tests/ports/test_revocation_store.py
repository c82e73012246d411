"""The token-revocation store, on SQLite and on a real PostgreSQL, and the in-process list it feeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.domain.revocations import TokenRevocations
from sidecar.errors import InvalidToken
from sidecar.models import CredentialType, Environment, Principal
from sidecar.ports import RevocationStore
from sidecar.ports.clock import FrozenClock
from sidecar.ports.postgres import PostgresDatabase
from sidecar.ports.postgres_revocations import MIGRATIONS as PG_MIGRATIONS
from sidecar.ports.postgres_revocations import PostgresRevocationStore
from sidecar.ports.sqlite import SqliteDatabase
from sidecar.ports.sqlite_revocations import MIGRATIONS as SQLITE_MIGRATIONS
from sidecar.ports.sqlite_revocations import SqliteRevocationStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def token_principal(jti: str, key_id: str = "key_1") -> Principal:
    return Principal(
        credential_type=CredentialType.SESSION_JWT,
        subject="u_1",
        org_id="org_1",
        role="operator",
        allowed_roles=("operator",),
        scopes=(),
        environment=Environment.LIVE,
        key_id=key_id,
        token_id=jti,
    )


class RevocationStoreContract:
    async def test_active_revocations_are_listed_and_expired_ones_are_not(self, store: RevocationStore) -> None:
        await store.add_revocation("jti", "tok_a", NOW + timedelta(hours=1))
        await store.add_revocation("key", "key_b", NOW + timedelta(minutes=1))
        await store.add_revocation("jti", "tok_old", NOW - timedelta(seconds=1))
        active = await store.active_revocations(NOW)
        assert sorted(active) == [
            ("jti", "tok_a", NOW + timedelta(hours=1)),
            ("key", "key_b", NOW + timedelta(minutes=1)),
        ]
        assert await store.active_revocations(NOW + timedelta(minutes=2)) == [
            ("jti", "tok_a", NOW + timedelta(hours=1))
        ]

    async def test_revoking_twice_keeps_the_later_end(self, store: RevocationStore) -> None:
        await store.add_revocation("jti", "tok_a", NOW + timedelta(hours=1))
        await store.add_revocation("jti", "tok_a", NOW + timedelta(minutes=5))
        assert await store.active_revocations(NOW) == [("jti", "tok_a", NOW + timedelta(hours=1))]


class TestSqliteRevocationStore(RevocationStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RevocationStore]:
        async with SqliteDatabase.open(tmp_path / "r.db", SQLITE_MIGRATIONS) as db:
            yield SqliteRevocationStore(db)


class TestPostgresRevocationStore(RevocationStoreContract):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[RevocationStore]:
        async with PostgresDatabase.open(pg_url, PG_MIGRATIONS, pool_size=2) as db:
            yield PostgresRevocationStore(db)


async def test_a_replica_applies_broadcasts_and_keeps_them_across_a_reload(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    async with SqliteDatabase.open(tmp_path / "r.db", SQLITE_MIGRATIONS) as db:
        store = SqliteRevocationStore(db)
        revocations = TokenRevocations(store, clock, max_token_ttl_s=3600)
        revocations.apply_message(f"jti {(NOW + timedelta(hours=1)).timestamp()} tok_heard")
        for garbage in ("", "jti", "jti notanumber tok_x", "other 1e12 x", "jti 1e12 "):
            revocations.apply_message(garbage)
        assert len(revocations) == 1
        await revocations.reload()  # the store does not have it yet: a broadcast is not forgotten
        with pytest.raises(InvalidToken):
            revocations.check(token_principal("tok_heard"))
        revocations.check(token_principal("tok_other"))
        clock.advance(3601)
        await revocations.reload()
        revocations.check(token_principal("tok_heard"))  # past its end: the token has expired anyway
