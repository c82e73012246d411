"""The in-process replay guard: a bounded set of keys, each forgotten when its TTL runs out."""

from __future__ import annotations

import heapq

from sidecar.ports import Clock


class MemoryReplayGuard:
    """For one process. When full, the entry closest to expiring makes room for the new one."""

    def __init__(self, clock: Clock, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max = max_entries
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    async def first_use(self, key: str, ttl_s: float) -> bool:
        now = self._clock.monotonic()
        self._forget_expired(now)
        if key in self._deadlines:
            return False
        while len(self._deadlines) >= self._max:
            self._pop_soonest()
        deadline = now + max(ttl_s, 0.0)
        self._deadlines[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        return True

    def _forget_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._pop_soonest()

    def _pop_soonest(self) -> None:
        deadline, key = heapq.heappop(self._heap)
        if self._deadlines.get(key) == deadline:
            del self._deadlines[key]

    def __len__(self) -> int:
        return len(self._deadlines)
