"""Readiness: a small list of named checks (store, cache, signing key, …) run together.

Components add their check when their resource opens (``readiness.add("redis", cache.ping)``);
a check passes by returning and fails by raising. Failures report a stable reason, never the
exception's text, which could hold a connection URL with a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from sidecar.errors import SidecarError

Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    reason: str | None = None
    #: a failing optional dependency (Redis) degrades the service but does not stop it serving
    required: bool = True


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    @property
    def degraded(self) -> bool:
        return self.ready and not all(c.ok for c in self.checks)


class Readiness:
    def __init__(self, *, timeout_s: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._optional: set[str] = set()
        self._timeout_s = timeout_s

    def add(self, name: str, check: Check, *, required: bool = True) -> None:
        """Register (or replace) the check called ``name``; an optional one only degrades readiness."""
        self._checks[name] = check
        if required:
            self._optional.discard(name)
        else:
            self._optional.add(name)

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._checks)

    async def run(self) -> ReadinessReport:
        """Run every check concurrently, each bounded by the timeout."""
        results = await asyncio.gather(*(self._one(name, check) for name, check in self._checks.items()))
        return ReadinessReport(
            checks=tuple(replace(r, required=False) if r.name in self._optional else r for r in results)
        )

    async def _one(self, name: str, check: Check) -> CheckResult:
        try:
            await asyncio.wait_for(check(), self._timeout_s)
        except TimeoutError:
            return CheckResult(name, ok=False, reason="timeout")
        except SidecarError as exc:
            return CheckResult(name, ok=False, reason=exc.reason)
        except Exception as exc:
            return CheckResult(name, ok=False, reason=type(exc).__name__)
        return CheckResult(name, ok=True)
