"""The SQLite key store against the KeyStore contract, plus what is particular to one file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidecar.app import SQLITE_MIGRATIONS
from sidecar.errors import Unavailable
from sidecar.ports import KeyStore
from sidecar.ports.migrations import Migration
from sidecar.ports.sqlite import MIGRATIONS, SqliteDatabase, SqliteKeyStore
from sidecar.ports.sqlite_key_scopes import MIGRATIONS as KEY_SCOPE_MIGRATIONS
from tests.contracts import KeyStoreContract, ScopeReader, make_record


class TestSqliteKeyStore(KeyStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[KeyStore]:
        async with SqliteDatabase.open(tmp_path / "keys.db", SQLITE_MIGRATIONS) as db:
            yield SqliteKeyStore(db)

    @pytest.fixture
    def key_scopes(self, tmp_path: Path) -> ScopeReader:
        async def read(key_id: str) -> set[str]:
            with closing(sqlite3.connect(tmp_path / "keys.db")) as db:
                rows = db.execute("SELECT scope FROM api_key_scopes WHERE key_id = ?", (key_id,)).fetchall()
            return {r[0] for r in rows}

        return read


async def test_three_connections_migrate_one_file_together(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"

    async def open_and_count() -> int:
        async with SqliteDatabase.open(path, MIGRATIONS) as db:
            return await SqliteKeyStore(db).count_keys()

    assert await asyncio.gather(*(open_and_count() for _ in range(3))) == [0, 0, 0]


async def test_keys_survive_reopening_the_file(tmp_path: Path) -> None:
    async with SqliteKeyStore.open(tmp_path / "k.db") as store:
        await store.insert_key(make_record(1))
    async with SqliteKeyStore.open(tmp_path / "k.db") as store:
        assert await store.get_key("key_000001") == make_record(1)


async def test_keys_made_before_token_ends_were_recorded_count_as_having_tokens_for_ever(tmp_path: Path) -> None:
    async with SqliteDatabase.open(tmp_path / "k.db", (MIGRATIONS[0], *KEY_SCOPE_MIGRATIONS)) as db:
        await SqliteKeyStore(db).insert_key(make_record(1))
    async with SqliteDatabase.open(tmp_path / "k.db", SQLITE_MIGRATIONS) as db:
        store = SqliteKeyStore(db)
        assert await store.key_tokens_until("key_000001") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        await store.insert_key(make_record(2))
        assert await store.key_tokens_until("key_000002") is None


async def test_a_closed_database_is_unavailable(tmp_path: Path) -> None:
    async with SqliteKeyStore.open(tmp_path / "k.db") as store:
        pass
    with pytest.raises(Unavailable) as caught:
        await store.get_key_by_digest("0" * 64)
    assert caught.value.reason == "store_unavailable"
    with pytest.raises(Unavailable):
        await store.ping()


async def test_migrations_listed_twice_run_once_and_clashes_are_refused(tmp_path: Path) -> None:
    async with SqliteDatabase.open(tmp_path / "k.db", (*SQLITE_MIGRATIONS, *SQLITE_MIGRATIONS)) as db:
        assert await SqliteKeyStore(db).count_keys() == 0
    clash = Migration("api_keys", 1, "CREATE TABLE other (id TEXT)")
    with pytest.raises(ValueError, match="api_keys version 1"):
        async with SqliteDatabase.open(tmp_path / "k2.db", (*MIGRATIONS, clash)):
            pass


async def test_a_cancellation_as_the_transaction_ends_stays_a_cancellation(tmp_path: Path) -> None:
    # COMMIT runs on aiosqlite's thread even when its await is cancelled; the ROLLBACK that
    # follows must not turn the CancelledError into an OperationalError that a worker's
    # "retry on error" loop would swallow (it then never stops)
    async def committed_then_cancelled(db: SqliteDatabase) -> None:
        async with db.transaction() as conn:
            await conn.execute("COMMIT")
            raise asyncio.CancelledError

    async with SqliteDatabase.open(tmp_path / "keys.db") as db:
        with pytest.raises(asyncio.CancelledError):
            await committed_then_cancelled(db)
        async with db.transaction() as conn:  # the lock is free and the connection usable
            await conn.execute("SELECT 1")


async def test_the_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    async with SqliteDatabase.open(tmp_path / "data" / "keys.db") as db:
        await SqliteKeyStore(db).insert_key(make_record(1))
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "data").iterdir()}
    assert modes["keys.db"] == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
