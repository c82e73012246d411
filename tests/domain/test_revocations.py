"""TokenRevocations with KeyService on one real SQLite file and a frozen clock: what is kept in memory.

Two KeyService/TokenRevocations pairs on one store stand for two replicas. The store is wrapped in
a proxy that counts calls and passes every one through unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import SQLITE_MIGRATIONS
from sidecar.domain.keys import KeyService, NewKey
from sidecar.domain.rbac import Policy
from sidecar.domain.revocations import PRUNE_EVERY_S, TokenRevocations
from sidecar.errors import InvalidToken, RevokedApiKey
from sidecar.models import CredentialType, Principal
from sidecar.ports.clock import FrozenClock
from sidecar.ports.memory_cache import MemoryKeyCache
from sidecar.ports.sqlite import SqliteDatabase, SqliteKeyStore
from sidecar.ports.sqlite_revocations import SqliteRevocationStore
from sidecar.settings import load_role_model

TTL_S = 3600


class Counting:
    """Passes every call to the real store, counting calls and the rows each read returned."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self.rows_read: list[int] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = await method(*args, **kwargs)
            if name == "revocations_since":
                self.rows_read.append(len(result[0]))
            return result

        return counted


@dataclass
class Replica:
    keys: KeyService
    revocations: TokenRevocations


@dataclass
class Shared:
    keys: Counting
    revocations: Counting
    clock: FrozenClock

    def replica(self) -> Replica:
        revocations = TokenRevocations(self.revocations, self.clock, max_token_ttl_s=TTL_S)  # type: ignore[arg-type]
        cache = MemoryKeyCache(self.clock, max_entries=1000, ttl_s=30, negative_ttl_s=5)
        policy = Policy(load_role_model(None))
        keys = KeyService(
            self.keys,  # type: ignore[arg-type]
            cache,
            self.clock,
            policy,
            default_org_id="org_a",
            revocations=revocations,
            token_ttl_s=TTL_S,
        )
        return Replica(keys, revocations)


@pytest.fixture
async def shared(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Shared]:
    async with SqliteDatabase.open(tmp_path / "sidecar.db", SQLITE_MIGRATIONS) as db:
        yield Shared(Counting(SqliteKeyStore(db)), Counting(SqliteRevocationStore(db)), clock)


def session_token_of(key: Principal, clock: FrozenClock, jti: str = "tok_1") -> Principal:
    """What a session JWT exchanged for ``key`` now says when it is verified."""
    return replace(
        key,
        credential_type=CredentialType.SESSION_JWT,
        token_id=jti,
        expires_at=clock.now() + timedelta(seconds=TTL_S),
    )


async def new_key(replica: Replica) -> tuple[str, Principal]:
    issued = await replica.keys.create(NewKey(name="svc"), grantor=None)
    return issued.record.id, await replica.keys.authenticate(issued.key)


# --- key revocations --------------------------------------------------------------------------


async def test_revoking_keys_that_never_exchanged_a_token_keeps_nothing(shared: Shared) -> None:
    a = shared.replica()
    for _ in range(200):
        key_id, _ = await new_key(a)
        await a.keys.revoke(key_id, viewer=None)
    assert len(a.revocations) == 0
    assert shared.revocations.calls["add_revocation"] == 0
    rows, _ = await shared.revocations.revocations_since(None, shared.clock.now())
    assert rows == []


async def test_a_key_that_exchanged_a_token_takes_its_tokens_with_it_on_every_replica(shared: Shared) -> None:
    a, b = shared.replica(), shared.replica()
    key_id, key = await new_key(a)
    await a.keys.note_token_exchange(key)  # A hands out a token
    token = session_token_of(key, shared.clock)
    b.revocations.check(token)

    await b.keys.revoke(key_id, viewer=None)
    with pytest.raises(InvalidToken):
        b.revocations.check(token)
    await a.revocations.reload()  # A hears of it from the store (or at once from a broadcast)
    with pytest.raises(InvalidToken):
        a.revocations.check(token)


async def test_a_replica_with_a_stale_cache_cannot_exchange_a_revoked_key(shared: Shared) -> None:
    a, b = shared.replica(), shared.replica()
    key_id, key = await new_key(a)  # A has the key in its cache, as active
    await b.keys.revoke(key_id, viewer=None)
    with pytest.raises(RevokedApiKey):
        await a.keys.note_token_exchange(key)


async def test_a_token_issued_from_a_stale_cache_after_the_revocation_is_still_refused(shared: Shared) -> None:
    a, b = shared.replica(), shared.replica()
    key_id, key = await new_key(a)
    await a.keys.note_token_exchange(key)  # recorded: A need not write again for a while
    await b.keys.revoke(key_id, viewer=None)
    shared.clock.advance(20)  # A's cache still says active; its record says it may issue without a write
    await a.keys.note_token_exchange(key)
    late = session_token_of(key, shared.clock, jti="tok_late")
    with pytest.raises(InvalidToken):
        b.revocations.check(late)
    shared.clock.advance(TTL_S - 1)  # just before the late token's expiry
    await b.revocations.reload()
    with pytest.raises(InvalidToken):
        b.revocations.check(late)


async def test_a_key_whose_tokens_have_all_expired_needs_no_entry(shared: Shared) -> None:
    a = shared.replica()
    key_id, key = await new_key(a)
    await a.keys.note_token_exchange(key)
    shared.clock.advance(2 * TTL_S + 1)
    await a.keys.revoke(key_id, viewer=None)
    assert len(a.revocations) == 0


async def test_exchanging_writes_once_per_key_per_token_lifetime(shared: Shared) -> None:
    a = shared.replica()
    _, key = await new_key(a)
    for _ in range(100):
        await a.keys.note_token_exchange(key)
        shared.clock.advance(10)  # 1000 s in all
    assert shared.keys.calls["mark_key_tokens"] == 1
    shared.clock.advance(TTL_S)
    await a.keys.note_token_exchange(key)
    assert shared.keys.calls["mark_key_tokens"] == 2


async def test_keys_revoked_before_marks_were_kept_revoke_their_tokens_for_two_lifetimes(
    shared: Shared, clock: FrozenClock
) -> None:
    a = shared.replica()
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=clock.now().tzinfo)  # what the migration gives old keys
    until = await a.revocations.revoke_key_tokens("key_old", far)
    assert until == clock.now() + timedelta(seconds=2 * TTL_S)


# --- token revocations: memory is bounded by rate x lifetime ------------------------------------


async def test_expired_entries_leave_as_new_ones_arrive_without_a_reload(shared: Shared) -> None:
    a = shared.replica()
    for n in range(500):
        await a.revocations.revoke_token(f"tok_{n}", shared.clock.now() + timedelta(seconds=10))
    assert len(a.revocations) == 500
    shared.clock.advance(10 + PRUNE_EVERY_S)
    await a.revocations.revoke_token("tok_new", shared.clock.now() + timedelta(seconds=10))
    assert len(a.revocations) == 1
    assert shared.revocations.calls["revocations_since"] == 0


async def test_a_steady_stream_of_revocations_levels_off(shared: Shared) -> None:
    a = shared.replica()
    lifetime = 120
    sizes = []
    for n in range(20 * lifetime):  # one a second for forty minutes
        await a.revocations.revoke_token(f"tok_{n}", shared.clock.now() + timedelta(seconds=lifetime))
        a.revocations.apply_message(f"jti {shared.clock.now().timestamp() + lifetime} tok_from_b_{n}")
        shared.clock.advance(1)
        sizes.append(len(a.revocations))
    # two a second, kept a lifetime, plus at most two minutes' worth awaiting their group
    assert max(sizes) <= 2 * (lifetime + 2 * PRUNE_EVERY_S)
    assert max(sizes[-lifetime:]) <= max(sizes[: 4 * lifetime])


async def test_a_reload_reads_what_is_new_not_what_is_held(shared: Shared) -> None:
    a, b = shared.replica(), shared.replica()
    for n in range(300):
        await a.revocations.revoke_token(f"tok_{n}", shared.clock.now() + timedelta(seconds=600))
    await b.revocations.reload()
    assert len(b.revocations) == 300
    await a.revocations.revoke_token("tok_more", shared.clock.now() + timedelta(seconds=600))
    await b.revocations.reload()
    await b.revocations.reload()
    assert shared.revocations.rows_read == [300, 1, 0]
    _, key = await new_key(a)
    with pytest.raises(InvalidToken):
        b.revocations.check(session_token_of(key, shared.clock, jti="tok_more"))
