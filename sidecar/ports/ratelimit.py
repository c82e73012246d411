"""Rate limiting by GCRA (the generic cell rate algorithm): the port, its values, the in-process limiter.

GCRA keeps one number per bucket, the theoretical arrival time (TAT) of the next request. Each allowed
request pushes the TAT one ``interval`` (= period / requests) further; a request is denied when that
would put the TAT more than ``burst * interval`` ahead of now. A token bucket without a refill loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from sidecar.ports import Clock


@dataclass(frozen=True, slots=True)
class Limit:
    """``requests`` per ``period_s`` sustained, up to ``burst`` at once."""

    requests: int
    period_s: float
    burst: int

    @property
    def interval_s(self) -> float:
        return self.period_s / self.requests


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    #: seconds until the bucket is full again (``RateLimit-Reset``)
    reset_s: float
    #: seconds until the next request would be allowed; 0 when this one was
    retry_after_s: float


class RateLimiter(Protocol):
    async def hit(self, bucket: str, limit: Limit) -> Decision:
        """Count one request against ``bucket`` and say whether it is allowed."""
        ...


def gcra(tat: float | None, now: float, limit: Limit) -> tuple[Decision, float | None]:
    """One GCRA step: the decision and the bucket's new TAT (``None``: unchanged, the request was denied)."""
    interval = limit.interval_s
    capacity = interval * limit.burst
    tat = now if tat is None or tat < now else tat
    new_tat = tat + interval
    allow_at = new_tat - capacity
    if now < allow_at:
        return Decision(False, limit.burst, 0, tat - now, allow_at - now), None
    remaining = min(limit.burst - 1, math.floor((now - allow_at) / interval + 1e-9))
    return Decision(True, limit.burst, remaining, new_tat - now, 0.0), new_tat


class MemoryRateLimiter:
    """GCRA in this process: each replica has its own budget (the fallback when Redis is not there)."""

    def __init__(self, clock: Clock, *, max_buckets: int = 100_000) -> None:
        self._clock = clock
        self._max = max_buckets
        self._tats: OrderedDict[str, float] = OrderedDict()

    def hit_now(self, bucket: str, limit: Limit) -> Decision:
        now = self._clock.monotonic()
        decision, new_tat = gcra(self._tats.get(bucket), now, limit)
        if new_tat is not None:
            tats = self._tats
            tats[bucket] = new_tat
            tats.move_to_end(bucket)
            # From the least recently used end, drop buckets over the bound and those whose TAT has
            # passed (a full bucket again, as if never seen), so a stream of new callers levels off
            while tats:
                if next(iter(tats.values())) > now and len(tats) <= self._max:
                    break
                tats.popitem(last=False)
        return decision

    async def hit(self, bucket: str, limit: Limit) -> Decision:
        return self.hit_now(bucket, limit)

    def __len__(self) -> int:
        return len(self._tats)
