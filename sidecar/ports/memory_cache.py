"""The in-process key-lookup cache: an LRU bounded in size, with separate TTLs for hits and misses."""

from __future__ import annotations

from collections import OrderedDict

from sidecar.models import ApiKeyRecord
from sidecar.ports import Clock


class MemoryKeyCache:
    def __init__(self, clock: Clock, *, max_entries: int, ttl_s: float, negative_ttl_s: float) -> None:
        self._clock = clock
        self._max = max_entries
        self._ttl = ttl_s
        self._negative_ttl = negative_ttl_s
        self._entries: OrderedDict[str, tuple[float, ApiKeyRecord | None]] = OrderedDict()

    def get(self, digest: str) -> tuple[bool, ApiKeyRecord | None]:
        entry = self._entries.get(digest)
        if entry is None:
            return False, None
        deadline, record = entry
        if deadline <= self._clock.monotonic():
            del self._entries[digest]
            return False, None
        self._entries.move_to_end(digest)
        return True, record

    def put(self, digest: str, record: ApiKeyRecord | None) -> None:
        if self._max <= 0:
            return
        ttl = self._ttl if record is not None else self._negative_ttl
        if ttl <= 0:
            return
        now = self._clock.monotonic()
        self._entries[digest] = (now + ttl, record)
        self._entries.move_to_end(digest)
        # From the least recently used end, drop what is over the bound and what has expired, so the
        # cache holds the keys in use (a stream of new keys would otherwise fill it to max_entries)
        while self._entries:
            deadline, _ = next(iter(self._entries.values()))
            if deadline > now and len(self._entries) <= self._max:
                break
            self._entries.popitem(last=False)

    def evict(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
