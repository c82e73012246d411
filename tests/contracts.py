"""Port contract suites, written once and run against every adapter.

A test module subclasses a contract and provides only the fixture it names (``store``); the
classes here have no ``Test`` prefix, so pytest collects them only through those subclasses.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sidecar.errors import Conflict, NotFound
from sidecar.models import ApiKeyRecord, Environment, KeyType
from sidecar.ports import KeyStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_record(n: int, **overrides: Any) -> ApiKeyRecord:
    """A distinct, fully populated record; ``n`` orders ``created_at`` (higher is newer)."""
    fields: dict[str, Any] = {
        "id": f"key_{n:06d}",
        "digest": hashlib.sha256(f"key-{n}".encode()).hexdigest(),
        "prefix": "sk_live_",
        "last4": f"{n:04d}"[-4:],
        "name": f"key number {n}",
        "type": KeyType.SECRET,
        "role": "operator",
        "environment": Environment.LIVE,
        "org_id": "org_a",
        "team_id": None,
        "user_id": None,
        "permissions": (),
        "created_at": T0 + timedelta(seconds=n),
    }
    fields.update(overrides)
    return ApiKeyRecord(**fields)


async def insert_all(store: KeyStore, records: list[ApiKeyRecord]) -> None:
    for record in records:
        await store.insert_key(record)


async def list_all(store: KeyStore, *, limit: int, **filters: Any) -> list[list[str]]:
    """Every page's ids, following ``starting_after`` until ``has_more`` is false."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = await store.list_keys(
            org_id=filters.get("org_id"), key_type=filters.get("key_type"), limit=limit, starting_after=after
        )
        pages.append([r.id for r in page.data])
        if not page.has_more:
            return pages
        assert page.data, "has_more with an empty page"
        after = page.data[-1].id


ScopeReader = Callable[[str], Awaitable[set[str]]]


class KeyStoreContract:
    """What every ``KeyStore`` adapter must do.

    Subclasses provide a fresh, empty ``store`` (with every migration the app runs) and
    ``key_scopes``: a reader of the key-scope table, which Hasura reads and the protocol only writes.
    """

    # --- insert and look up ------------------------------------------------------------------

    async def test_ping_answers(self, store: KeyStore) -> None:
        await store.ping()

    async def test_every_field_round_trips(self, store: KeyStore) -> None:
        record = make_record(
            1,
            type=KeyType.RESTRICTED,
            role="restricted",
            environment=Environment.TEST,
            team_id="team_x",
            user_id="user_y",
            permissions=("orders:read", "returns:*"),
            allowed_origins=("https://shop.example", "https://admin.example"),
            expires_at=T0 + timedelta(days=30, microseconds=7),
            revoked_at=T0 + timedelta(days=1),
            last_used_at=T0 + timedelta(hours=2),
            rolled_to="key_000002",
        )
        await store.insert_key(record)
        assert await store.get_key(record.id) == record
        assert await store.get_key_by_digest(record.digest) == record
        loaded = await store.get_key(record.id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)

    async def test_optional_fields_stay_empty(self, store: KeyStore) -> None:
        record = make_record(1)
        await store.insert_key(record)
        loaded = await store.get_key(record.id)
        assert loaded == record
        assert loaded is not None
        assert (loaded.expires_at, loaded.revoked_at, loaded.last_used_at, loaded.rolled_to) == (None,) * 4
        assert loaded.permissions == ()
        assert loaded.allowed_origins == ()

    async def test_unknown_id_and_digest_are_none(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        assert await store.get_key("key_nope") is None
        assert await store.get_key_by_digest("0" * 64) is None

    async def test_lookup_by_digest_is_exact(self, store: KeyStore) -> None:
        record = make_record(1)
        await store.insert_key(record)
        assert await store.get_key_by_digest(record.digest.upper()) is None
        assert await store.get_key_by_digest(record.digest[:-1]) is None

    async def test_digest_is_unique(self, store: KeyStore) -> None:
        first = make_record(1)
        await store.insert_key(first)
        with pytest.raises(Conflict):
            await store.insert_key(make_record(2, digest=first.digest))
        assert await store.count_keys() == 1
        assert await store.get_key_by_digest(first.digest) == first

    async def test_id_is_unique(self, store: KeyStore) -> None:
        first = make_record(1)
        await store.insert_key(first)
        with pytest.raises(Conflict):
            await store.insert_key(make_record(2, id=first.id))
        assert await store.get_key(first.id) == first

    async def test_count(self, store: KeyStore) -> None:
        assert await store.count_keys() == 0
        await insert_all(store, [make_record(n) for n in range(3)])
        assert await store.count_keys() == 3

    # --- list ----------------------------------------------------------------------------------

    async def test_empty_store_lists_nothing(self, store: KeyStore) -> None:
        page = await store.list_keys(org_id=None, key_type=None, limit=10, starting_after=None)
        assert page.data == []
        assert page.has_more is False

    async def test_list_is_newest_first_in_pages(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(n) for n in (3, 1, 5, 2, 4)])
        assert await list_all(store, limit=2) == [
            ["key_000005", "key_000004"],
            ["key_000003", "key_000002"],
            ["key_000001"],
        ]

    async def test_has_more_is_false_when_the_last_page_is_exactly_full(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(n) for n in range(4)])
        first = await store.list_keys(org_id=None, key_type=None, limit=4, starting_after=None)
        assert len(first.data) == 4
        assert first.has_more is False
        assert await list_all(store, limit=2) == [["key_000003", "key_000002"], ["key_000001", "key_000000"]]

    async def test_same_created_at_breaks_ties_by_id_without_skipping(self, store: KeyStore) -> None:
        ids = ("Ab", "aB", "b0", "B9", "0z")
        records = [make_record(10 + i, id=f"key_{c}", created_at=T0) for i, c in enumerate(ids)]
        await insert_all(store, [*records, make_record(2), make_record(0)])
        pages = await list_all(store, limit=2)
        flat = [i for page in pages for i in page]
        ties = sorted((r.id for r in records), reverse=True)  # bytewise, as Python compares str
        assert flat == ["key_000002", *ties, "key_000000"]
        assert [len(p) for p in pages] == [2, 2, 2, 1]

    async def test_cursor_for_a_missing_id_gives_an_empty_page(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(n) for n in range(3)])
        page = await store.list_keys(org_id=None, key_type=None, limit=10, starting_after="key_gone")
        assert page.data == []
        assert page.has_more is False

    async def test_cursor_at_the_oldest_key_gives_an_empty_page(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(n) for n in range(3)])
        page = await store.list_keys(org_id=None, key_type=None, limit=10, starting_after="key_000000")
        assert page.data == []
        assert page.has_more is False

    async def test_filter_by_org_and_type(self, store: KeyStore) -> None:
        await insert_all(
            store,
            [
                make_record(1, org_id="org_a"),
                make_record(2, org_id="org_b"),
                make_record(3, org_id="org_a", type=KeyType.PUBLISHABLE, role="anonymous"),
                make_record(4, org_id="org_b", type=KeyType.PUBLISHABLE, role="anonymous"),
                make_record(5, org_id="org_a"),
            ],
        )
        assert await list_all(store, limit=10, org_id="org_a") == [["key_000005", "key_000003", "key_000001"]]
        assert await list_all(store, limit=10, key_type=KeyType.PUBLISHABLE) == [["key_000004", "key_000003"]]
        assert await list_all(store, limit=1, org_id="org_a", key_type=KeyType.SECRET) == [
            ["key_000005"],
            ["key_000001"],
        ]
        assert await list_all(store, limit=10, org_id="org_z") == [[]]

    async def test_filtered_pagination_accepts_a_cursor_outside_the_filter(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(n, org_id="org_a" if n % 2 else "org_b") for n in range(1, 7)])
        page = await store.list_keys(org_id="org_a", key_type=None, limit=10, starting_after="key_000004")
        assert [r.id for r in page.data] == ["key_000003", "key_000001"]

    # --- revoke ----------------------------------------------------------------------------------

    async def test_revoke_marks_the_key(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(1), make_record(2)])
        revoked = await store.revoke_key("key_000001", T0 + timedelta(hours=1))
        assert revoked is not None
        assert revoked.revoked_at == T0 + timedelta(hours=1)
        assert await store.get_key("key_000001") == revoked
        other = await store.get_key("key_000002")
        assert other is not None
        assert other.revoked_at is None

    async def test_revoke_twice_keeps_the_first_time(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        await store.revoke_key("key_000001", T0 + timedelta(hours=1))
        again = await store.revoke_key("key_000001", T0 + timedelta(hours=5))
        assert again is not None
        assert again.revoked_at == T0 + timedelta(hours=1)

    async def test_revoke_unknown_is_none(self, store: KeyStore) -> None:
        assert await store.revoke_key("key_nope", T0) is None
        assert await store.count_keys() == 0

    # --- roll ------------------------------------------------------------------------------------

    async def test_roll_inserts_the_successor_and_shortens_the_old_key(self, store: KeyStore) -> None:
        old = make_record(1)
        await store.insert_key(old)
        new = make_record(2, name=old.name)
        await store.roll_key(old.id, T0 + timedelta(days=1), new)
        assert await store.get_key(new.id) == new
        assert await store.get_key(old.id) == replace(old, expires_at=T0 + timedelta(days=1), rolled_to=new.id)
        assert await store.get_key_by_digest(old.digest) is not None

    async def test_roll_is_atomic_when_the_successor_cannot_be_stored(self, store: KeyStore) -> None:
        old, bystander = make_record(1), make_record(2)
        await insert_all(store, [old, bystander])
        clash = make_record(3, digest=bystander.digest)
        with pytest.raises(Conflict):
            await store.roll_key(old.id, T0 + timedelta(days=1), clash)
        assert await store.get_key(old.id) == old
        assert await store.get_key(clash.id) is None
        assert await store.count_keys() == 2

    async def test_roll_of_an_unknown_key_stores_nothing(self, store: KeyStore) -> None:
        with pytest.raises(NotFound):
            await store.roll_key("key_nope", T0, make_record(2))
        assert await store.count_keys() == 0

    async def test_a_key_rolls_once(self, store: KeyStore) -> None:
        old = make_record(1)
        await store.insert_key(old)
        await store.roll_key(old.id, T0 + timedelta(days=1), make_record(2))
        with pytest.raises(Conflict):
            await store.roll_key(old.id, T0 + timedelta(days=2), make_record(3))
        assert await store.get_key("key_000003") is None
        loaded = await store.get_key(old.id)
        assert loaded is not None
        assert (loaded.rolled_to, loaded.expires_at) == ("key_000002", T0 + timedelta(days=1))

    async def test_a_revoked_key_does_not_roll(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        await store.revoke_key("key_000001", T0)
        with pytest.raises(Conflict):
            await store.roll_key("key_000001", T0 + timedelta(days=1), make_record(2))
        assert await store.count_keys() == 1

    async def test_concurrent_rolls_of_one_key_have_one_winner(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        results = await asyncio.gather(
            *(store.roll_key("key_000001", T0 + timedelta(days=1), make_record(n)) for n in (2, 3, 4)),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, Conflict) for r in results if r is not None)
        assert await store.count_keys() == 2

    # --- touch -----------------------------------------------------------------------------------

    async def test_touch_records_last_used(self, store: KeyStore) -> None:
        await insert_all(store, [make_record(1), make_record(2), make_record(3)])
        t1, t2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
        await store.touch_keys({"key_000001": t1, "key_000002": t2})
        loaded = [await store.get_key(f"key_00000{n}") for n in (1, 2, 3)]
        assert [r.last_used_at if r else "missing" for r in loaded] == [t1, t2, None]

    async def test_touch_later_times_win(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        late, early = T0 + timedelta(minutes=10), T0 + timedelta(minutes=5)
        await store.touch_keys({"key_000001": late})
        await store.touch_keys({"key_000001": early})
        loaded = await store.get_key("key_000001")
        assert loaded is not None
        assert loaded.last_used_at == late

    async def test_touch_ignores_unknown_ids_and_empty_batches(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        await store.touch_keys({})
        await store.touch_keys({"key_nope": T0, "key_000001": T0})
        assert await store.count_keys() == 1
        loaded = await store.get_key("key_000001")
        assert loaded is not None
        assert loaded.last_used_at == T0

    async def test_touch_a_large_batch(self, store: KeyStore) -> None:
        records = [make_record(n) for n in range(100)]
        await insert_all(store, records)
        await store.touch_keys({r.id: T0 + timedelta(seconds=n) for n, r in enumerate(records)})
        page = await store.list_keys(org_id=None, key_type=None, limit=100, starting_after=None)
        assert all(r.last_used_at == T0 + timedelta(seconds=int(r.id[4:])) for r in page.data)

    # --- the end of a key's session tokens -----------------------------------------------------

    async def test_a_key_that_never_exchanged_a_token_has_no_end(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        assert await store.key_tokens_until("key_000001") is None
        assert await store.key_tokens_until("key_nope") is None

    async def test_the_later_end_stays(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        assert await store.mark_key_tokens("key_000001", T0 + timedelta(hours=2))
        assert await store.mark_key_tokens("key_000001", T0 + timedelta(hours=1))
        assert await store.key_tokens_until("key_000001") == T0 + timedelta(hours=2)

    async def test_a_revoked_or_unknown_key_records_no_end(self, store: KeyStore) -> None:
        await store.insert_key(make_record(1))
        assert await store.mark_key_tokens("key_000001", T0 + timedelta(hours=1))
        await store.revoke_key("key_000001", T0)
        assert not await store.mark_key_tokens("key_000001", T0 + timedelta(hours=5))
        assert await store.key_tokens_until("key_000001") == T0 + timedelta(hours=1)
        assert not await store.mark_key_tokens("key_nope", T0)

    async def test_a_mark_racing_the_revocation_lands_before_it_or_not_at_all(self, store: KeyStore) -> None:
        for n in range(20):
            await store.insert_key(make_record(n))
            key_id, until = f"key_{n:06d}", T0 + timedelta(hours=1)
            marked, _ = await asyncio.gather(store.mark_key_tokens(key_id, until), store.revoke_key(key_id, T0))
            assert await store.key_tokens_until(key_id) == (until if marked else None)

    # --- the key-scope table -------------------------------------------------------------------

    async def test_set_key_scopes_replaces_the_rows(self, store: KeyStore, key_scopes: ScopeReader) -> None:
        await insert_all(store, [make_record(1), make_record(2)])
        await store.set_key_scopes("key_000001", ["orders:read", "returns:*", "orders:read"])
        await store.set_key_scopes("key_000002", ["inventory:read"])
        assert await key_scopes("key_000001") == {"orders:read", "returns:*"}
        await store.set_key_scopes("key_000001", ["customers:read"])
        assert await key_scopes("key_000001") == {"customers:read"}
        await store.set_key_scopes("key_000001", [])
        assert await key_scopes("key_000001") == set()
        assert await key_scopes("key_000002") == {"inventory:read"}

    async def test_concurrent_scope_writes_leave_one_whole_set(self, store: KeyStore, key_scopes: ScopeReader) -> None:
        await store.insert_key(make_record(1))
        sets = [["orders:read", "orders:write"], ["returns:read"], ["inventory:read", "reports:read", "settings:read"]]
        await asyncio.gather(*(store.set_key_scopes("key_000001", s) for s in sets))
        assert await key_scopes("key_000001") in [set(s) for s in sets]
