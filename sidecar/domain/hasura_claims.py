"""Hasura session variables in the form Hasura v2 accepts (shared/hasura-contract.md §3.14-3.17).

Every value is a string; lists become PostgreSQL array literals (``{"a","b"}``); the default role
is inside the unique, non-empty allowed roles; there is never an ``x-hasura-role`` claim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def pg_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal with every element quoted, so commas, braces and spaces are safe."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What the Hasura claims object says about a session."""

    default_role: str
    allowed_roles: tuple[str, ...]
    user_id: str
    org_id: str
    key_id: str
    environment: str
    permissions: tuple[str, ...]
    team_id: str | None = None

    def to_claims(self) -> dict[str, str | list[str]]:
        roles = list(dict.fromkeys((self.default_role, *self.allowed_roles)))
        claims: dict[str, str | list[str]] = {
            "x-hasura-default-role": self.default_role,
            "x-hasura-allowed-roles": roles,
            "x-hasura-user-id": self.user_id,
            "x-hasura-org-id": self.org_id,
            "x-hasura-key-id": self.key_id,
            "x-hasura-environment": self.environment,
            "x-hasura-permissions": pg_array(self.permissions),
        }
        if self.team_id is not None:
            claims["x-hasura-team-id"] = self.team_id
        return claims
