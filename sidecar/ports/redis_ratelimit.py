"""GCRA in Redis: one atomic round trip per request (a Lua script), so every replica shares one budget.

The script reads Redis's own clock (``TIME``), so replicas with skewed clocks still agree. When
Redis does not answer (timeout, down, circuit open) the in-process limiter decides instead.
"""

from __future__ import annotations

from sidecar.ports.ratelimit import Decision, Limit, MemoryRateLimiter
from sidecar.ports.redis_client import RedisClient, RedisGuard

#: KEYS[1] bucket; ARGV[1] interval µs; ARGV[2] burst. Returns {allowed, remaining, retry_after µs, reset µs}.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
local remaining = math.floor((now - allow_at) / interval)
if remaining > burst - 1 then remaining = burst - 1 end
return {1, remaining, 0, new_tat - now}
"""


class RedisRateLimiter:
    def __init__(self, client: RedisClient, guard: RedisGuard, fallback: MemoryRateLimiter, *, prefix: str) -> None:
        self._script = client.register_script(GCRA_LUA)
        self._guard = guard
        self._fallback = fallback
        self._prefix = prefix + "rl:"

    async def hit(self, bucket: str, limit: Limit) -> Decision:
        interval_us = max(1, round(limit.interval_s * 1_000_000))
        result = await self._guard.run(
            lambda: self._script(keys=[self._prefix + bucket], args=[interval_us, limit.burst]), None
        )
        if result is None:
            return self._fallback.hit_now(bucket, limit)
        allowed, remaining, retry_us, reset_us = (int(v) for v in result)
        return Decision(bool(allowed), limit.burst, remaining, reset_us / 1e6, retry_us / 1e6)
