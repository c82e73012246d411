"""What every ``ReplayGuard`` adapter must do; run against each adapter by overriding fixtures.

Adapters provide ``guard`` and ``pass_time`` (an async callable that makes ``seconds`` pass for the
guard: a frozen clock moves for the in-process one, real time passes for a server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sidecar.ports import ReplayGuard

PassTime = Callable[[float], Awaitable[None]]


class ReplayGuardContract:
    async def test_first_use_is_true_then_false(self, guard: ReplayGuard) -> None:
        assert await guard.first_use("stateset:1:ab", 60) is True
        assert await guard.first_use("stateset:1:ab", 60) is False
        assert await guard.first_use("stateset:1:cd", 60) is True

    async def test_a_key_is_forgotten_after_its_ttl(self, guard: ReplayGuard, pass_time: PassTime) -> None:
        assert await guard.first_use("standard:msg_1", 0.2)
        assert await guard.first_use("standard:msg_2", 600)
        await pass_time(0.3)
        assert await guard.first_use("standard:msg_1", 0.2) is True
        assert await guard.first_use("standard:msg_2", 600) is False

    async def test_concurrent_uses_of_one_key_admit_exactly_one(self, guard: ReplayGuard) -> None:
        results = await asyncio.gather(*(guard.first_use("standard:race", 60) for _ in range(20)))
        assert results.count(True) == 1

    async def test_long_and_odd_keys_work(self, guard: ReplayGuard) -> None:
        key = "standard:" + "é" * 300 + " \n:"
        assert await guard.first_use(key, 60)
        assert not await guard.first_use(key, 60)
