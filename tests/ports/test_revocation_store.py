"""The token-revocation store, on SQLite and on a real PostgreSQL, and the in-process list it feeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from sidecar.domain.revocations import PRUNE_EVERY_S, TokenRevocations
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
        active, _ = await store.revocations_since(None, NOW)
        assert sorted(active) == [
            ("jti", "tok_a", NOW + timedelta(hours=1)),
            ("key", "key_b", NOW + timedelta(minutes=1)),
        ]
        later, _ = await store.revocations_since(None, NOW + timedelta(minutes=2))
        assert later == [("jti", "tok_a", NOW + timedelta(hours=1))]

    async def test_revoking_twice_keeps_the_later_end(self, store: RevocationStore) -> None:
        await store.add_revocation("jti", "tok_a", NOW + timedelta(hours=1))
        await store.add_revocation("jti", "tok_a", NOW + timedelta(minutes=5))
        assert (await store.revocations_since(None, NOW))[0] == [("jti", "tok_a", NOW + timedelta(hours=1))]

    async def test_a_reader_reads_on_from_its_cursor(self, store: RevocationStore) -> None:
        await store.add_revocation("jti", "tok_a", NOW + timedelta(hours=1))
        first, cursor = await store.revocations_since(None, NOW)
        assert [subject for _, subject, _ in first] == ["tok_a"]
        assert (await store.revocations_since(cursor, NOW))[0] == []  # nothing new

        await store.add_revocation("jti", "tok_b", NOW + timedelta(hours=1))
        await store.add_revocation("jti", "tok_a", NOW + timedelta(hours=2))  # extended: news too
        news, cursor = await store.revocations_since(cursor, NOW)
        assert sorted(news) == [("jti", "tok_a", NOW + timedelta(hours=2)), ("jti", "tok_b", NOW + timedelta(hours=1))]
        assert (await store.revocations_since(cursor, NOW))[0] == []

    async def test_a_cursor_survives_the_newest_entry_expiring(self, store: RevocationStore) -> None:
        await store.add_revocation("jti", "tok_short", NOW + timedelta(seconds=1))
        _, cursor = await store.revocations_since(None, NOW)
        later = NOW + timedelta(minutes=1)
        assert (await store.revocations_since(cursor, later))[0] == []  # tok_short has expired (and may go)
        await store.add_revocation("jti", "tok_next", later + timedelta(hours=1))
        assert (await store.revocations_since(cursor, later))[0] == [("jti", "tok_next", later + timedelta(hours=1))]


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


async def test_a_revocation_committed_while_another_replica_reads_is_read_the_next_time(pg_url: str) -> None:
    """Transaction ids are handed out in one order and committed in another: the reader must
    not skip a write that began before its read and committed after it."""
    async with PostgresDatabase.open(pg_url, PG_MIGRATIONS, pool_size=2) as db:
        store = PostgresRevocationStore(db)
        _, cursor = await store.revocations_since(None, NOW)
        slow = await asyncpg.connect(pg_url)
        try:
            async with slow.transaction():
                await slow.execute(
                    "INSERT INTO token_revocations (kind, subject, until) VALUES ('jti', 'tok_slow', $1)",
                    (NOW + timedelta(hours=1)).timestamp(),
                )
                await store.add_revocation("jti", "tok_fast", NOW + timedelta(hours=1))  # a later id, committed first
                seen, cursor = await store.revocations_since(cursor, NOW)
                assert [subject for _, subject, _ in seen] == ["tok_fast"]
            seen, cursor = await store.revocations_since(cursor, NOW)
            assert "tok_slow" in [subject for _, subject, _ in seen]
        finally:
            await slow.close()


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
        clock.advance(3600 + PRUNE_EVERY_S)
        await revocations.reload()
        revocations.check(token_principal("tok_heard"))  # gone within a minute of its end (the token expired)
        assert len(revocations) == 0
