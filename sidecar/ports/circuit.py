"""A circuit breaker for an optional dependency (Redis): after repeated failures, stop asking for a while.

Closed: every call goes through. After ``failures`` consecutive failures it opens: calls are skipped
(the caller uses its fallback at once, so a dead or slow Redis costs nothing per request). After
``reset_s`` one trial call is let through (half-open); its success closes the breaker, its failure
opens it again for another ``reset_s``.
"""

from __future__ import annotations

import logging

from sidecar.ports import Clock

log = logging.getLogger("sidecar.redis")


class CircuitBreaker:
    def __init__(self, clock: Clock, *, name: str, failures: int, reset_s: float) -> None:
        self._clock = clock
        self._name = name
        self._threshold = max(1, failures)
        self._reset_s = reset_s
        self._failures = 0
        self._open_until: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._open_until is None:
            return "closed"
        return "open" if self._clock.monotonic() < self._open_until else "half_open"

    def allow(self) -> bool:
        """Whether to try the dependency now (in half-open state, only one caller at a time)."""
        if self._open_until is None:
            return True
        if self._clock.monotonic() < self._open_until or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def success(self) -> None:
        if self._open_until is not None:
            log.warning("%s is answering again; circuit closed", self._name)
        self._failures = 0
        self._open_until = None
        self._trial_in_flight = False

    def failure(self) -> None:
        self._failures += 1
        self._trial_in_flight = False
        if self._open_until is not None or self._failures >= self._threshold:
            if self._open_until is None:
                log.warning("%s is failing; circuit open, falling back for %.1f s", self._name, self._reset_s)
            self._open_until = self._clock.monotonic() + self._reset_s
