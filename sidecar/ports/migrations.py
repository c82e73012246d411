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
    """The migrations not yet applied, in (component, version) order, each once.

    A migration listed twice (say, by two wirings of one component) runs once; two different
    migrations claiming one (component, version) are a programming error.
    """
    unique: dict[tuple[str, int], Migration] = {}
    for migration in migrations:
        key = (migration.component, migration.version)
        if unique.setdefault(key, migration) != migration:
            raise ValueError(f"two different migrations for {migration.component} version {migration.version}")
    applied = set(done)
    return [unique[key] for key in sorted(unique) if key not in applied]
