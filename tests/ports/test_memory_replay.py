from __future__ import annotations

import pytest

from sidecar.ports.clock import FrozenClock
from sidecar.ports.memory_replay import MemoryReplayGuard
from tests.ports.replay_contract import PassTime, ReplayGuardContract


class TestMemoryReplayGuard(ReplayGuardContract):
    @pytest.fixture
    def guard(self, clock: FrozenClock) -> MemoryReplayGuard:
        return MemoryReplayGuard(clock, max_entries=1000)

    @pytest.fixture
    def pass_time(self, clock: FrozenClock) -> PassTime:
        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        return advance


async def test_bounded_the_soonest_to_expire_makes_room(clock: FrozenClock) -> None:
    guard = MemoryReplayGuard(clock, max_entries=3)
    for key, ttl in (("a", 300), ("b", 10), ("c", 300)):
        assert await guard.first_use(key, ttl)
    assert await guard.first_use("d", 300)
    assert len(guard) == 3
    assert [await guard.first_use(k, 300) for k in ("a", "c", "d")] == [False, False, False]
    assert await guard.first_use("b", 300) is True  # "b" was evicted to make room for "d"


async def test_expired_entries_do_not_count_against_the_bound(clock: FrozenClock) -> None:
    guard = MemoryReplayGuard(clock, max_entries=100)
    for i in range(100):
        await guard.first_use(f"k{i}", 1)
    clock.advance(2)
    assert await guard.first_use("new", 1)
    assert len(guard) == 1
