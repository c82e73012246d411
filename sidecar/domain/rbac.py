"""The role model from ``config/roles.yaml``: roles, their scopes, who may act as whom.

Pure: the YAML is read by ``sidecar.settings`` and handed here as plain data, validated by
these pydantic models (unknown scope, unknown role, cycle in ``acts_as`` all fail at start-up).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidecar.domain import scopes as scope_rules
from sidecar.errors import Forbidden, InvalidRequest
from sidecar.models import Principal

Action = Literal["create", "read", "update", "delete"]
Ownership = Literal["own", "team", "all"]
REQUIRED_ROLES = ("anonymous", "viewer", "operator", "manager", "admin", "super_admin", "restricted")


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    actions: tuple[Action, ...]
    ownership: Ownership


class RoleDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    key_prefix: str | None = None
    acts_as: tuple[str, ...]
    scopes: tuple[str, ...]
    matrix: dict[str, Grant] = Field(default_factory=dict)


class RoleModel(BaseModel):
    """The whole of ``roles.yaml``, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scopes: dict[str, str]
    resources: tuple[str, ...]
    roles: dict[str, RoleDef]

    @model_validator(mode="after")
    def _check(self) -> RoleModel:
        missing = [r for r in REQUIRED_ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"roles file: missing role(s) {', '.join(missing)}")
        for name, role in self.roles.items():
            self._check_role(name, role)
        self._check_acyclic()
        return self

    def _check_role(self, name: str, role: RoleDef) -> None:
        for other in role.acts_as:
            if other not in self.roles:
                raise ValueError(f"roles file: role {name!r} acts as unknown role {other!r}")
        if name not in role.acts_as:
            raise ValueError(f"roles file: role {name!r} must list itself in acts_as")
        for scope in role.scopes:
            if not self.is_known_scope(scope):
                raise ValueError(f"roles file: role {name!r} has unknown scope {scope!r}")
        for resource in role.matrix:
            if resource not in self.resources:
                raise ValueError(f"roles file: role {name!r} has a matrix row for unknown resource {resource!r}")

    def _check_acyclic(self) -> None:
        """``acts_as`` orders roles by power: A acting as B and B as A (A != B) is a cycle."""
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = " -> ".join((*path[path.index(name) :], name))
                raise ValueError(f"roles file: cycle in acts_as: {cycle}")
            state[name] = 1
            for other in self.roles[name].acts_as:
                if other != name:
                    visit(other, (*path, name))
            state[name] = 2

        for name in self.roles:
            visit(name, ())

    def is_known_scope(self, scope: str) -> bool:
        """A scope of the table, or a wildcard pattern over known resources and actions."""
        if scope in self.scopes:
            return True
        parts = scope_rules.split(scope)
        if parts is None:
            return False
        resource, action = parts
        known = [scope_rules.split(s) for s in self.scopes]
        return any(k is not None and (resource in ("*", k[0])) and (action in ("*", k[1])) for k in known)


class Policy:
    """Questions about roles and scopes, answered from the role model."""

    def __init__(self, model: RoleModel) -> None:
        self._model = model

    @property
    def model(self) -> RoleModel:
        return self._model

    def has_role(self, role: str) -> bool:
        return role in self._model.roles

    def role_scopes(self, role: str) -> tuple[str, ...]:
        return self._model.roles[role].scopes

    def acts_as(self, role: str) -> tuple[str, ...]:
        return self._model.roles[role].acts_as

    def check_scopes_known(self, requested: Iterable[str]) -> None:
        unknown = [s for s in requested if not self._model.is_known_scope(s)]
        if unknown:
            raise InvalidRequest(f"unknown scope(s): {', '.join(unknown)}", reason="unknown_scope")

    def require(self, principal: Principal, scope: str) -> None:
        """Raise ``Forbidden`` naming ``scope`` unless the principal holds it."""
        if not scope_rules.allows(principal.scopes, scope):
            raise Forbidden(f"this credential lacks the required scope: {scope}", reason="missing_scope")

    def check_can_grant(self, grantor: Principal, role: str, requested_scopes: Iterable[str]) -> None:
        """A grantor may hand out only roles it may act as, and only scopes it holds itself."""
        if role not in grantor.allowed_roles:
            raise Forbidden(
                f"a {grantor.role} credential cannot create a credential with role {role}",
                reason="role_escalation",
            )
        missing = scope_rules.within(grantor.scopes, requested_scopes)
        if missing:
            raise Forbidden(
                f"this credential cannot grant scope(s) it does not hold: {', '.join(missing)}",
                reason="scope_escalation",
            )
