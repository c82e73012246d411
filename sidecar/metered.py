"""Adapters that time or count calls to a port and record them in ``Metrics``, and the hooks
the composition root hands domain services (tokens signed, signing keys loaded).

Only the composition root wraps ports with these, so domain services and adapters stay free
of metrics code (and a service's hot path is unchanged when metrics are off).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from sidecar.domain.signing_keys import KeySource, KeyState, KeyStatus, RingView
from sidecar.metrics import Metrics
from sidecar.models import ApiKeyRecord
from sidecar.ports import KeyCache, SharedKeyCache

T = TypeVar("T")


class _TimedStore:
    """Forwards every attribute to the store; its coroutine methods are timed per method name."""

    def __init__(self, inner: object, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        timed = _timed(attr, name, self._metrics)
        setattr(self, name, timed)  # later lookups skip __getattr__
        return timed


def _timed(method: Callable[..., Awaitable[Any]], name: str, metrics: Metrics) -> Callable[..., Awaitable[Any]]:
    perf_counter = time.perf_counter

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            metrics.store_call(name, perf_counter() - started)

    return timed


def timed_store(store: T, metrics: Metrics) -> T:
    """``store`` with each async call observed in ``sidecar_store_call_duration_seconds``."""
    return cast(T, _TimedStore(store, metrics))


class CountedKeyCache:
    """A ``KeyCache`` whose lookups count as hits or misses of ``tier``."""

    def __init__(self, inner: KeyCache, metrics: Metrics, *, tier: str = "memory") -> None:
        self._inner = inner
        self._metrics = metrics
        self._tier = tier

    def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None]:
        found = self._inner.get(digest)
        self._metrics.cache(self._tier, found[0])
        return found

    def put(self, digest: str, record: ApiKeyRecord | None) -> None:
        self._inner.put(digest, record)

    def evict(self, digest: str) -> None:
        self._inner.evict(digest)

    def clear(self) -> None:
        self._inner.clear()

    def __len__(self) -> int:
        return len(self._inner)


class TimedSharedKeyCache:
    """A ``SharedKeyCache`` (Redis) whose calls are timed and whose lookups count as hits or misses."""

    def __init__(self, inner: SharedKeyCache, metrics: Metrics, *, tier: str = "redis") -> None:
        self._inner = inner
        self._metrics = metrics
        self._tier = tier

    async def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None]:
        started = time.perf_counter()
        found = await self._inner.get(digest)
        self._metrics.redis_call("get", time.perf_counter() - started)
        self._metrics.cache(self._tier, found[0])
        return found

    async def put(self, digest: str, record: ApiKeyRecord | None) -> None:
        started = time.perf_counter()
        await self._inner.put(digest, record)
        self._metrics.redis_call("set", time.perf_counter() - started)

    async def invalidate(self, digest: str) -> bool:
        started = time.perf_counter()
        delivered = await self._inner.invalidate(digest)
        self._metrics.redis_call("invalidate", time.perf_counter() - started)
        return delivered


#: The gauge's slots, and the key state each one shows.
SIGNING_KEY_SLOTS = {"current": KeyState.CURRENT, "next": KeyState.NEXT, "previous": KeyState.PREVIOUS}


def signing_key_ages(metrics: Metrics) -> Callable[[RingView], None]:
    """A ``KeyRing`` view hook: each slot's key creation time, for ``sidecar_signing_key_age_seconds``.

    ``next`` is the key that signs soonest, ``previous`` the one superseded last. A slot with no
    key, or whose key has no known creation time (the HS256 secret), is emptied.
    """

    def record(view: RingView) -> None:
        for slot, state in SIGNING_KEY_SLOTS.items():
            found = [s for s in view.statuses if s.state is state and s.key.source is not KeySource.SETTINGS]
            chosen = _newest_superseded(found) if state is KeyState.PREVIOUS else _soonest(found)
            metrics.signing_key_loaded(slot, chosen.key.created_at.timestamp() if chosen else None)

    return record


def _soonest(statuses: list[KeyStatus]) -> KeyStatus | None:
    return min(statuses, key=lambda s: s.key.activates_at, default=None)


def _newest_superseded(statuses: list[KeyStatus]) -> KeyStatus | None:
    return max(statuses, key=lambda s: s.key.activates_at, default=None)
