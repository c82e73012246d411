"""Scope matching: ``resource:action`` with ``*`` wildcards, and ``admin`` meaning everything.

``admin`` grants every ``resource:action`` except the sidecar's own ``system`` resource, which
only explicit ``system:…`` scopes grant; only ``admin`` itself satisfies a requirement of ``admin``.
So ``admin`` does not cover a resource wildcard (``*:read``, ``*:*``): that would reach ``system``.
"""

from __future__ import annotations

from collections.abc import Iterable

ADMIN = "admin"
SYSTEM_RESOURCE = "system"


def split(scope: str) -> tuple[str, str] | None:
    """``("orders", "read")`` for ``orders:read``; ``None`` if it is not of that shape."""
    resource, sep, action = scope.partition(":")
    if not sep or not resource or not action or ":" in action:
        return None
    return resource, action


def covers(granted: str, required: str) -> bool:
    """Does holding ``granted`` satisfy ``required``? ``required`` may itself be a wildcard."""
    if granted == required:
        return True
    if required == ADMIN:
        return False
    want = split(required)
    if want is None:
        return False
    if granted == ADMIN:
        # a resource wildcard reaches system scopes too, which admin does not cover
        return want[0] not in (SYSTEM_RESOURCE, "*")
    have = split(granted)
    if have is None:
        return False
    return all(h == "*" or h == w for h, w in zip(have, want, strict=True))


def allows(granted: Iterable[str], required: str) -> bool:
    return any(covers(g, required) for g in granted)


def within(granted: Iterable[str], requested: Iterable[str]) -> list[str]:
    """The requested scopes that ``granted`` does not cover (empty when all are covered)."""
    held = tuple(granted)
    return [r for r in requested if not allows(held, r)]
