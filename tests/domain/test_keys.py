"""KeyService on real adapters (SQLite in tmp_path, the in-process cache) and a frozen clock.

The store is wrapped in a proxy that counts calls and passes every one through unchanged: it
observes the real store, it does not stand in for it.
"""

from __future__ import annotations

import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.domain import keyformat
from sidecar.domain.keys import IssuedKey, KeyService, NewKey
from sidecar.domain.rbac import Policy
from sidecar.errors import (
    Conflict,
    ExpiredApiKey,
    Forbidden,
    InvalidApiKey,
    InvalidRequest,
    NotFound,
    RevokedApiKey,
)
from sidecar.models import Environment, KeyType, Principal
from sidecar.ports import KeyStore
from sidecar.ports.clock import FrozenClock
from sidecar.ports.memory_cache import MemoryKeyCache
from sidecar.ports.sqlite import SqliteKeyStore
from sidecar.settings import default_roles_text, load_role_model


class CountingStore:
    """Passes every call to the real store and counts it by method name."""

    def __init__(self, inner: KeyStore) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted

    @property
    def writes(self) -> int:
        return sum(
            n for name, n in self.calls.items() if name in ("insert_key", "revoke_key", "roll_key", "touch_keys")
        )

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    async with SqliteKeyStore.open(tmp_path / "keys.db") as real:
        yield CountingStore(real)


@pytest.fixture
def cache(clock: FrozenClock) -> MemoryKeyCache:
    return MemoryKeyCache(clock, max_entries=1000, ttl_s=30, negative_ttl_s=5)


@pytest.fixture
def policy() -> Policy:
    return Policy(load_role_model(None))


@pytest.fixture
def keys(store: CountingStore, cache: MemoryKeyCache, clock: FrozenClock, policy: Policy) -> KeyService:
    return KeyService(store, cache, clock, policy, default_org_id="org_a")  # type: ignore[arg-type]


async def principal(keys: KeyService, **spec: Any) -> Principal:
    """The principal of a fresh key made by the local operator (no grantor)."""
    issued = await keys.create(NewKey(**spec), grantor=None)
    return await keys.authenticate(issued.key)


def unknown_key() -> str:
    """Well-formed (the checksum matches) but never stored."""
    return keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "operator", Environment.LIVE))


# --- last_used_at is batched -------------------------------------------------------------------


async def test_authenticating_writes_nothing_until_the_flush(
    keys: KeyService, store: CountingStore, clock: FrozenClock
) -> None:
    issued = await keys.create(NewKey(name="busy"), grantor=None)
    store.calls.clear()
    for _ in range(50):
        clock.advance(0.5)  # all within the cache's 30 s
        await keys.authenticate(issued.key)
    assert store.writes == 0
    assert store.calls["get_key_by_digest"] == 1  # the rest came from the cache
    stored = await store.get_key(issued.record.id)
    assert stored is not None
    assert stored.last_used_at is None

    assert await keys.flush_last_used() == 1
    assert store.calls["touch_keys"] == 1
    stored = await store.get_key(issued.record.id)
    assert stored is not None
    assert stored.last_used_at == clock.now()

    assert await keys.flush_last_used() == 0
    assert store.calls["touch_keys"] == 1


async def test_one_flush_writes_every_key_used_since_the_last(
    keys: KeyService, store: CountingStore, clock: FrozenClock
) -> None:
    a = await keys.create(NewKey(name="a"), grantor=None)
    b = await keys.create(NewKey(name="b"), grantor=None)
    await keys.authenticate(a.key)
    clock.advance(5)
    await keys.authenticate(b.key)
    store.calls.clear()
    assert await keys.flush_last_used() == 2
    assert store.calls == Counter({"touch_keys": 1})
    used_a, used_b = await store.get_key(a.record.id), await store.get_key(b.record.id)
    assert used_a is not None
    assert used_b is not None
    assert used_b.last_used_at == used_a.last_used_at + timedelta(seconds=5)  # type: ignore[operator]


async def test_failed_authentications_are_not_recorded_as_use(keys: KeyService, store: CountingStore) -> None:
    issued = await keys.create(NewKey(), grantor=None)
    await keys.revoke(issued.record.id, viewer=None)
    with pytest.raises(RevokedApiKey):
        await keys.authenticate(issued.key)
    assert await keys.flush_last_used() == 0


# --- the checksum guards the store -------------------------------------------------------------


def _mutations(key: str) -> list[str]:
    body_at = len(key) - 20
    swap = "A" if key[body_at] != "A" else "B"
    return [
        key[:body_at] + swap + key[body_at + 1 :],  # one random character changed
        key[:-1] + ("A" if key[-1] != "A" else "B"),  # one checksum character changed
        key[:-1],
        key + "A",
        key.replace("sk_live_", "sk_mgr_", 1),  # right body, another prefix
        key.replace("sk_live_", "xx_live_", 1),
        "sk_live_" + "é" * 38,
        "sk_live_",
    ]


async def test_keys_failing_their_checksum_never_reach_the_store_or_cache(
    keys: KeyService, store: CountingStore, cache: MemoryKeyCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = await keys.create(NewKey(), grantor=None)
    await keys.authenticate(issued.key)  # the real key is in the cache now
    store.calls.clear()
    cached = len(cache)
    looked_up: list[str] = []
    lookup = cache.get
    monkeypatch.setattr(cache, "get", lambda digest: looked_up.append(digest) or lookup(digest))
    for bad in _mutations(issued.key):
        with pytest.raises(InvalidApiKey) as caught:
            await keys.authenticate(bad)
        assert caught.value.reason == "api_key_malformed"
        assert bad not in caught.value.message
    assert store.total == 0
    assert len(cache) == cached
    assert looked_up == []


async def test_a_well_formed_unknown_key_asks_the_store_once_per_negative_ttl(
    keys: KeyService, store: CountingStore, clock: FrozenClock
) -> None:
    stranger = unknown_key()
    for _ in range(10):
        with pytest.raises(InvalidApiKey) as caught:
            await keys.authenticate(stranger)
        assert caught.value.reason == "api_key_unknown"
    assert store.calls["get_key_by_digest"] == 1
    clock.advance(5)
    with pytest.raises(InvalidApiKey):
        await keys.authenticate(stranger)
    assert store.calls["get_key_by_digest"] == 2


async def test_the_negative_cache_is_bounded(store: CountingStore, clock: FrozenClock, policy: Policy) -> None:
    cache = MemoryKeyCache(clock, max_entries=3, ttl_s=30, negative_ttl_s=60)
    keys = KeyService(store, cache, clock, policy, default_org_id="org_a")  # type: ignore[arg-type]
    strangers = [unknown_key() for _ in range(10)]
    for stranger in strangers:
        with pytest.raises(InvalidApiKey):
            await keys.authenticate(stranger)
        assert len(cache) <= 3
    assert len(cache) == 3
    assert store.calls["get_key_by_digest"] == 10
    with pytest.raises(InvalidApiKey):
        await keys.authenticate(strangers[0])  # evicted long ago: the store is asked again
    assert store.calls["get_key_by_digest"] == 11


async def test_expired_entries_leave_the_cache_without_waiting_for_its_bound(
    store: CountingStore, clock: FrozenClock, policy: Policy
) -> None:
    cache = MemoryKeyCache(clock, max_entries=1000, ttl_s=30, negative_ttl_s=5)
    keys = KeyService(store, cache, clock, policy, default_org_id="org_a")  # type: ignore[arg-type]
    for _ in range(50):  # a stream of new keys, each used once (keys made and thrown away)
        await keys.authenticate((await keys.create(NewKey(), grantor=None)).key)
        clock.advance(1)
    assert len(cache) <= 31  # the last TTL's worth, not all 50
    live = (await keys.create(NewKey(), grantor=None)).key
    await keys.authenticate(live)
    clock.advance(31)
    await keys.authenticate((await keys.create(NewKey(), grantor=None)).key)
    assert len(cache) == 1  # every older entry had expired
    calls = store.calls["get_key_by_digest"]
    await keys.authenticate(live)  # expired, so asked again, and cached again
    assert store.calls["get_key_by_digest"] == calls + 1
    assert len(cache) == 2


def wrong_checksum(key: str) -> str:
    """``key`` with one checksum character changed: the prefix and the shape stay right."""
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert keyformat.parse(forged) is None
    return forged


FLOOD = 3000


async def test_a_flood_of_random_keys_keeps_the_cache_bounded_and_forgeries_away_from_the_store(
    store: CountingStore, clock: FrozenClock, policy: Policy
) -> None:
    """Thousands of random keys a second, half with a matching checksum (each unknown, each a store
    lookup), half forged: the cache never holds more than its bound, forgeries cost nothing."""
    cache = MemoryKeyCache(clock, max_entries=256, ttl_s=30, negative_ttl_s=60)
    keys = KeyService(store, cache, clock, policy, default_org_id="org_a")  # type: ignore[arg-type]
    largest = 0
    started = time.perf_counter()
    for i in range(FLOOD):
        for presented in (unknown_key(), wrong_checksum(unknown_key())):
            with pytest.raises(InvalidApiKey):
                await keys.authenticate(presented)
        if i % 100 == 0:
            largest = max(largest, len(cache))
    rate = 2 * FLOOD / (time.perf_counter() - started)
    assert max(largest, len(cache)) <= 256
    assert len(cache) == 256
    assert store.calls == Counter({"get_key_by_digest": FLOOD})  # one per well-formed key, none per forgery
    assert keys._last_used == {}  # nothing is remembered for keys that failed
    assert rate > 1000, f"only {rate:.0f} keys/s"


async def test_the_stored_digest_is_compared_in_constant_time(
    keys: KeyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = await keys.create(NewKey(), grantor=None)
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    await keys.authenticate(issued.key)  # from the store
    await keys.authenticate(issued.key)  # from the cache
    assert compared == [(issued.record.digest, keyformat.digest(issued.key))] * 2


async def test_revocation_beats_the_cache(keys: KeyService) -> None:
    issued = await keys.create(NewKey(), grantor=None)
    await keys.authenticate(issued.key)  # now cached
    await keys.revoke(issued.record.id, viewer=None)
    with pytest.raises(RevokedApiKey):
        await keys.authenticate(issued.key)


async def test_expiry_is_checked_on_every_use_even_when_cached(keys: KeyService, clock: FrozenClock) -> None:
    issued = await keys.create(NewKey(expires_at=clock.now() + timedelta(seconds=10)), grantor=None)
    await keys.authenticate(issued.key)
    clock.advance(10)
    with pytest.raises(ExpiredApiKey):
        await keys.authenticate(issued.key)


async def test_roll_keeps_both_keys_until_the_old_expires(keys: KeyService, clock: FrozenClock) -> None:
    old = await keys.create(NewKey(role="manager"), grantor=None)
    await keys.authenticate(old.key)
    new, previous = await keys.roll(old.record.id, expires_in_s=60, viewer=None)
    assert previous.expires_at == clock.now() + timedelta(seconds=60)
    assert (await keys.authenticate(new.key)).role == "manager"
    assert (await keys.authenticate(old.key)).role == "manager"
    clock.advance(60)
    with pytest.raises(ExpiredApiKey):
        await keys.authenticate(old.key)
    assert (await keys.authenticate(new.key)).key_id == new.record.id
    with pytest.raises(Conflict):
        await keys.roll(old.record.id, expires_in_s=0, viewer=None)


async def test_a_rolled_keys_principal_carries_its_new_expiry(keys: KeyService, clock: FrozenClock) -> None:
    """The principal built for a cached key is reused only while the cache holds that same record."""
    old = await keys.create(NewKey(), grantor=None)
    assert (await keys.authenticate(old.key)).expires_at is None
    assert (await keys.authenticate(old.key)).expires_at is None  # the reused principal
    await keys.roll(old.record.id, expires_in_s=60, viewer=None)
    assert (await keys.authenticate(old.key)).expires_at == clock.now() + timedelta(seconds=60)
    keys.forget_all()
    assert (await keys.authenticate(old.key)).expires_at == clock.now() + timedelta(seconds=60)


async def test_a_key_rolled_by_another_replica_shows_its_expiry_once_the_cache_entry_expires(
    keys: KeyService, store: CountingStore, clock: FrozenClock, policy: Policy
) -> None:
    other = KeyService(
        store, MemoryKeyCache(clock, max_entries=10, ttl_s=30, negative_ttl_s=5), clock, policy, default_org_id="org_a"
    )  # type: ignore[arg-type]
    old = await keys.create(NewKey(), grantor=None)
    assert (await keys.authenticate(old.key)).expires_at is None
    await other.roll(old.record.id, expires_in_s=3600, viewer=None)  # no broadcast reaches `keys`
    assert (await keys.authenticate(old.key)).expires_at is None  # its cached record, for up to ttl_s
    clock.advance(31)
    assert (await keys.authenticate(old.key)).expires_at == clock.now() + timedelta(seconds=3600 - 31)


# --- what a key may be -------------------------------------------------------------------------


async def test_restricted_keys_need_permissions(keys: KeyService) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await keys.create(NewKey(type=KeyType.RESTRICTED), grantor=None)
    assert caught.value.reason == "no_permissions"
    made = await principal(keys, type=KeyType.RESTRICTED, permissions=("orders:read", "orders:read"))
    assert made.scopes == ("orders:read",)


@pytest.mark.parametrize(
    ("role", "permissions"),
    [("viewer", ("orders:write",)), ("operator", ("settings:write",)), ("manager", ("admin",))],
)
async def test_permissions_beyond_the_role_are_refused(keys: KeyService, role: str, permissions: tuple[str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await keys.create(NewKey(role=role, permissions=permissions), grantor=None)
    assert caught.value.reason == "permissions_beyond_role"
    assert permissions[0] in caught.value.message


async def test_permissions_within_the_role_narrow_the_key(keys: KeyService) -> None:
    made = await principal(keys, role="viewer", permissions=("orders:read",))
    assert (made.role, made.scopes) == ("viewer", ("orders:read",))


def narrowed_roles_file(tmp_path: Path) -> Path:
    """The packaged roles.yaml with operator's orders cut down to read (no orders:write)."""
    data = yaml.safe_load(default_roles_text())
    operator = data["roles"]["operator"]
    operator["scopes"].remove("orders:write")
    operator["matrix"]["orders"]["actions"] = ["read"]
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def test_a_role_narrowed_after_a_key_was_made_narrows_the_key(
    keys: KeyService, store: CountingStore, cache: MemoryKeyCache, clock: FrozenClock, tmp_path: Path
) -> None:
    narrow = await keys.create(NewKey(role="operator", permissions=("orders:read", "orders:write")), grantor=None)
    writer = await keys.create(NewKey(role="operator", permissions=("orders:write", "returns:read")), grantor=None)
    whole = await keys.create(NewKey(role="operator"), grantor=None)
    restricted = await keys.create(NewKey(type=KeyType.RESTRICTED, permissions=("orders:write",)), grantor=None)

    # the operator edits roles.yaml and restarts: the same store, the narrowed role model
    policy = Policy(load_role_model(narrowed_roles_file(tmp_path)))
    restarted = KeyService(store, cache, clock, policy, default_org_id="org_a")  # type: ignore[arg-type]
    restarted.forget_all()

    assert (await restarted.authenticate(narrow.key)).scopes == ("orders:read",)
    assert (await restarted.authenticate(writer.key)).scopes == ("returns:read",)
    assert (await restarted.authenticate(whole.key)).scopes == policy.role_scopes("operator")
    assert (await restarted.authenticate(restricted.key)).scopes == ("orders:write",)  # restricted: its own list


@pytest.mark.parametrize(
    "spec",
    [
        NewKey(type=KeyType.PUBLISHABLE, role="admin"),
        NewKey(type=KeyType.RESTRICTED, role="viewer", permissions=("orders:read",)),
        NewKey(role="restricted"),
        NewKey(role="anonymous"),
        NewKey(role="emperor"),
        NewKey(permissions=("orders:fly",)),
        NewKey(name="x" * 201),
    ],
)
async def test_impossible_keys_are_refused(keys: KeyService, store: CountingStore, spec: NewKey) -> None:
    with pytest.raises(InvalidRequest):
        await keys.create(spec, grantor=None)
    assert store.writes == 0


async def test_expiry_must_be_in_the_future(keys: KeyService, clock: FrozenClock) -> None:
    with pytest.raises(InvalidRequest):
        await keys.create(NewKey(expires_at=clock.now()), grantor=None)


# --- escalation: a credential cannot mint more power than it has -------------------------------


@pytest.fixture
async def admin(keys: KeyService) -> Principal:
    return await principal(keys, role="admin", org_id="org_a")


@pytest.fixture
async def super_admin(keys: KeyService) -> Principal:
    return await principal(keys, role="super_admin", org_id="org_a")


async def test_admin_cannot_create_super_admin_keys(keys: KeyService, admin: Principal, store: CountingStore) -> None:
    store.calls.clear()
    with pytest.raises(Forbidden) as caught:
        await keys.create(NewKey(role="super_admin"), grantor=admin)
    assert caught.value.reason == "role_escalation"
    assert store.writes == 0
    made = await keys.create(NewKey(role="admin"), grantor=admin)
    assert made.record.role == "admin"


@pytest.mark.parametrize("scope", ["system:orgs", "system:signing_keys", "system:*"])
async def test_admin_cannot_grant_scopes_it_lacks(keys: KeyService, admin: Principal, scope: str) -> None:
    with pytest.raises(Forbidden) as caught:
        await keys.create(NewKey(type=KeyType.RESTRICTED, permissions=(scope,)), grantor=admin)
    assert caught.value.reason == "scope_escalation"


@pytest.mark.parametrize("scope", ["*:*", "*:read"])
async def test_a_wildcard_an_admin_grants_does_not_reach_system_scopes(
    keys: KeyService, admin: Principal, scope: str
) -> None:
    made = await keys.create(NewKey(type=KeyType.RESTRICTED, permissions=(scope,)), grantor=admin)
    wild = await keys.authenticate(made.key)
    with pytest.raises(Forbidden):
        await keys.create(NewKey(org_id="org_b"), grantor=wild)
    with pytest.raises(Forbidden):
        await keys.list(viewer=wild, org_id="org_b", key_type=None, limit=10, starting_after=None)


async def test_admin_can_grant_what_it_holds(keys: KeyService, admin: Principal) -> None:
    made = await keys.create(NewKey(type=KeyType.RESTRICTED, permissions=("orders:*", "admin")), grantor=admin)
    assert made.record.permissions == ("orders:*", "admin")


async def test_a_restricted_key_cannot_widen_itself(keys: KeyService) -> None:
    narrow = await principal(keys, type=KeyType.RESTRICTED, permissions=("orders:read",))
    with pytest.raises(Forbidden) as caught:
        await keys.create(NewKey(type=KeyType.RESTRICTED, permissions=("orders:write",)), grantor=narrow)
    assert caught.value.reason == "scope_escalation"


async def test_super_admin_may_grant_system_scopes(keys: KeyService, super_admin: Principal) -> None:
    made = await keys.create(NewKey(type=KeyType.RESTRICTED, permissions=("system:orgs",)), grantor=super_admin)
    assert made.record.permissions == ("system:orgs",)


async def test_admin_cannot_act_in_another_org(keys: KeyService, admin: Principal) -> None:
    with pytest.raises(Forbidden) as caught:
        await keys.create(NewKey(org_id="org_b"), grantor=admin)
    assert caught.value.reason == "cross_org"
    with pytest.raises(Forbidden):
        await keys.list(viewer=admin, org_id="org_b", key_type=None, limit=10, starting_after=None)
    theirs = await keys.create(NewKey(org_id="org_b"), grantor=None)
    for action in (
        keys.get(theirs.record.id, viewer=admin),
        keys.revoke(theirs.record.id, viewer=admin),
        keys.roll(theirs.record.id, expires_in_s=0, viewer=admin),
    ):
        with pytest.raises(NotFound):
            await action
    listed = await keys.list(viewer=admin, org_id=None, key_type=None, limit=100, starting_after=None)
    assert {r.org_id for r in listed.data} == {"org_a"}


async def test_system_orgs_scope_crosses_orgs(keys: KeyService, super_admin: Principal) -> None:
    made = await keys.create(NewKey(org_id="org_b"), grantor=super_admin)
    assert made.record.org_id == "org_b"
    listed = await keys.list(viewer=super_admin, org_id="org_b", key_type=None, limit=10, starting_after=None)
    assert [r.id for r in listed.data] == [made.record.id]


async def test_admin_cannot_roll_a_more_powerful_key_into_its_own_hands(
    keys: KeyService, admin: Principal, super_admin: Principal
) -> None:
    assert super_admin.key_id is not None
    with pytest.raises(Forbidden) as caught:
        await keys.roll(super_admin.key_id, expires_in_s=0, viewer=admin)
    assert caught.value.reason == "role_escalation"
    mine: IssuedKey = await keys.create(NewKey(role="manager"), grantor=admin)
    new, _ = await keys.roll(mine.record.id, expires_in_s=0, viewer=admin)
    assert new.record.role == "manager"


async def test_keys_default_to_the_grantors_org(keys: KeyService) -> None:
    elsewhere = await principal(keys, role="admin", org_id="org_c")
    made = await keys.create(NewKey(), grantor=elsewhere)
    assert made.record.org_id == "org_c"
    assert (await keys.create(NewKey(), grantor=None)).record.org_id == "org_a"


async def test_a_key_whose_role_was_removed_from_the_roles_file_is_refused(
    store: CountingStore, cache: MemoryKeyCache, clock: FrozenClock, policy: Policy, tmp_path: Path
) -> None:
    data = yaml.safe_load(default_roles_text())
    data["roles"]["auditor"] = {
        "acts_as": ["auditor"],
        "scopes": ["reports:read"],
        "matrix": {"reports": {"actions": ["read"], "ownership": "all"}},
    }
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with_auditor = KeyService(store, cache, clock, Policy(load_role_model(path)), default_org_id="org_a")  # type: ignore[arg-type]
    issued = await with_auditor.create(NewKey(role="auditor"), grantor=None)

    without = KeyService(store, cache, clock, policy, default_org_id="org_a")  # type: ignore[arg-type]
    without.forget_all()
    with pytest.raises(InvalidApiKey) as caught:
        await without.authenticate(issued.key)
    assert caught.value.reason == "api_key_role_unknown"
