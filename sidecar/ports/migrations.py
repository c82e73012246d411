"""Schema migrations shared by the SQL adapters: versioned per component, each applied once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step of one component (``api_keys``, ``signing_keys``, …), applied once."""

    component: str
    version: int
    sql: str


def pending(migrations: Sequence[Migration], done: Iterable[tuple[str, int]]) -> list[Migration]:
    """The migrations not yet applied, in (component, version) order."""
    applied = set(done)
    return sorted(
        (m for m in migrations if (m.component, m.version) not in applied),
        key=lambda m: (m.component, m.version),
    )
