"""Scope matching: ``resource:action`` with ``*`` wildcards, and ``admin`` meaning everything.

``admin`` grants every ``resource:action`` except the sidecar's own ``system`` resource, which
only explicit ``system:…`` scopes grant; only ``admin`` itself satisfies a requirement of ``admin``.
A ``*`` resource wildcard does not reach ``system`` either: ``*:*`` is everything ``admin`` is,
so no grant of ``*:*`` (say, to a restricted key an admin creates) can reach system configuration.
"""

from __future__ import annotations

from collections.abc import Iterable

ADMIN = "admin"
SYSTEM_RESOURCE = "system"
WILDCARD = "*"


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
        return want[0] != SYSTEM_RESOURCE
    have = split(granted)
    if have is None:
        return False
    if have[0] == WILDCARD and want[0] == SYSTEM_RESOURCE:
        return False
    return all(h in (WILDCARD, w) for h, w in zip(have, want, strict=True))


def allows(granted: Iterable[str], required: str) -> bool:
    """Does any of ``granted`` cover ``required``?"""
    return any(covers(g, required) for g in granted)


def within(granted: Iterable[str], requested: Iterable[str]) -> list[str]:
    """The requested scopes that ``granted`` does not cover (empty when all are covered)."""
    held = tuple(granted)
    return [r for r in requested if not allows(held, r)]


def covering(required: str) -> tuple[str, ...]:
    """Every scope that covers the concrete ``required`` scope (for checks done elsewhere, e.g. SQL).

    ``orders:read`` -> ``orders:read``, ``orders:*``, ``*:read``, ``*:*``, ``admin``.
    """
    parts = split(required)
    if parts is None or WILDCARD in parts:
        raise ValueError(f"not a concrete resource:action scope: {required!r}")
    resource, action = parts
    candidates = (required, f"{resource}:*", f"*:{action}", "*:*", ADMIN)
    return tuple(c for c in dict.fromkeys(candidates) if covers(c, required))
