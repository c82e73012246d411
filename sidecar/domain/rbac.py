"""The role model from ``config/roles.yaml``: roles, their scopes, who may act as whom, the matrix.

Pure: the YAML is read by ``sidecar.settings`` and handed here as plain data, validated by
these pydantic models. Every check fails at start-up with a message naming the role, scope or
resource at fault: unknown scope, unknown role in ``acts_as``, cycle in ``acts_as``, an
``acts_as`` target whose cell is wider than the acting role's own (acting as another role may
only narrow), missing role, matrix row for an unknown resource, a matrix cell the role's scopes
do not back (or a scope no matrix cell uses), and a role that would be Hasura's built-in ``admin``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidecar.domain import scopes as scope_rules
from sidecar.domain.memo import remember
from sidecar.errors import Forbidden, InvalidRequest
from sidecar.models import Principal

Action = Literal["create", "read", "update", "delete"]
Ownership = Literal["own", "team", "all"]
ACTIONS: tuple[Action, ...] = ("create", "read", "update", "delete")
#: own < team < all: how many rows a cell reaches.
OWNERSHIP_RANK: dict[Ownership, int] = {"own": 0, "team": 1, "all": 2}
REQUIRED_ROLES = ("anonymous", "viewer", "operator", "manager", "admin", "super_admin", "restricted")
#: Hasura's built-in role: it bypasses every permission, so no role of ours may become it by accident.
HASURA_ADMIN_ROLE = "admin"
#: The scope that lifts the "inside the caller's org" rule.
ALL_ORGS_SCOPE = "system:orgs"


def action_scope(resource: str, action: Action) -> str:
    """The scope an action on a resource needs: ``read`` needs ``<resource>:read``, the rest ``:write``."""
    return f"{resource}:{'read' if action == 'read' else 'write'}"


class Grant(BaseModel):
    """One cell of the matrix: what a role may do on a resource, and on whose rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    actions: tuple[Action, ...] = Field(min_length=1)
    ownership: Ownership

    def covers(self, other: Grant) -> bool:
        """Does this cell reach everything ``other`` does: each of its actions, on as many rows?"""
        return set(other.actions) <= set(self.actions) and (
            OWNERSHIP_RANK[other.ownership] <= OWNERSHIP_RANK[self.ownership]
        )

    def describe(self) -> str:
        return f"{', '.join(self.actions)} {self.ownership}"


class RoleDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    key_prefix: str | None = None
    #: the role's name in Hasura (default: the role's own name)
    hasura_role: str | None = Field(None, min_length=1)
    acts_as: tuple[str, ...]
    scopes: tuple[str, ...]
    matrix: dict[str, Grant] = Field(default_factory=dict)
    #: set for ``restricted``: its row comes from each key's own scopes, with this ownership
    from_scopes: Ownership | None = None


class RoleModel(BaseModel):
    """The whole of ``roles.yaml``, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scopes: dict[str, str]
    resources: tuple[str, ...]
    roles: dict[str, RoleDef]

    @model_validator(mode="after")
    def _check(self) -> RoleModel:
        for scope in self.scopes:
            self._check_scope_entry(scope)
        missing = [r for r in REQUIRED_ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"missing role(s) {', '.join(missing)}")
        for name, role in self.roles.items():
            self._check_role(name, role)
        self._check_acyclic()
        for name, role in self.roles.items():
            self._check_acts_as_narrows(name, role)
        self._check_hasura_names()
        return self

    def _check_scope_entry(self, scope: str) -> None:
        if scope == scope_rules.ADMIN:
            return
        parts = scope_rules.split(scope)
        if parts is None or scope_rules.WILDCARD in parts:
            raise ValueError(f"scope {scope!r} in the scopes table is not a concrete resource:action")
        if parts[0] not in (*self.resources, scope_rules.SYSTEM_RESOURCE):
            raise ValueError(f"scope {scope!r} names unknown resource {parts[0]!r}")

    def _check_role(self, name: str, role: RoleDef) -> None:
        for other in role.acts_as:
            if other not in self.roles:
                raise ValueError(f"role {name!r} acts as unknown role {other!r}")
        if name not in role.acts_as:
            raise ValueError(f"role {name!r} must list itself in acts_as")
        for scope in role.scopes:
            if not self.is_known_scope(scope):
                raise ValueError(f"role {name!r} has unknown scope {scope!r}")
        for resource in role.matrix:
            if resource not in self.resources:
                raise ValueError(f"role {name!r} has a matrix row for unknown resource {resource!r}")
        if role.from_scopes is not None:
            if role.matrix or role.scopes:
                raise ValueError(
                    f"role {name!r} takes its matrix from each key's scopes (from_scopes); "
                    "it cannot also list scopes or matrix rows"
                )
            return
        self._check_matrix_matches_scopes(name, role)

    def _check_matrix_matches_scopes(self, name: str, role: RoleDef) -> None:
        """The sidecar checks scopes and Hasura checks the matrix: the two must say the same thing."""
        for resource, grant in role.matrix.items():
            for action in grant.actions:
                needed = action_scope(resource, action)
                if not scope_rules.allows(role.scopes, needed):
                    raise ValueError(
                        f"role {name!r} may {action} {resource} by its matrix, but its scopes lack {needed}"
                    )
        for resource in self.resources:
            granted = set(role.matrix[resource].actions) if resource in role.matrix else set()
            for kind, actions in (("read", {"read"}), ("write", {"create", "update", "delete"})):
                scope = f"{resource}:{kind}"
                if scope_rules.allows(role.scopes, scope) and not actions & granted:
                    raise ValueError(
                        f"role {name!r} holds {scope} through its scopes, "
                        f"but its matrix gives it no {kind} access to {resource}"
                    )

    def _check_acyclic(self) -> None:
        """``acts_as`` orders roles by power: A acting as B and B as A (A != B) is a cycle."""
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = " -> ".join((*path[path.index(name) :], name))
                raise ValueError(f"cycle in acts_as: {cycle}")
            state[name] = 1
            for other in self.roles[name].acts_as:
                if other != name:
                    visit(other, (*path, name))
            state[name] = 2

        for name in self.roles:
            visit(name, ())

    def _check_acts_as_narrows(self, name: str, role: RoleDef) -> None:
        """Acting as another role may only narrow. Hasura applies the target's cells as they are,
        so a target cell wider than the actor's own (an operator's *own* orders read as viewer's
        *all*) would undo the actor's ownership filters."""
        own = self.row(name, role.scopes)
        for other in role.acts_as:
            if other == name:
                continue
            target = self.roles[other]
            # a from_scopes target's row is what the actor's scopes describe; any other, its own row
            theirs = self.row(other, role.scopes if target.from_scopes is not None else target.scopes)
            for resource, grant in theirs.items():
                mine = own.get(resource)
                if mine is None or not mine.covers(grant):
                    raise ValueError(
                        f"role {name!r} acts as {other!r}, whose {resource} cell ({grant.describe()}) is "
                        f"wider than its own ({mine.describe() if mine else 'no access'}); acting as a role "
                        f"may only narrow access: remove {other!r} from the acts_as of {name!r}"
                    )

    def row(self, role: str, held: Iterable[str]) -> dict[str, Grant]:
        """The matrix row of ``role`` as far as the scopes ``held`` reach.

        A role's own row, cut down to the actions the held scopes cover (a key narrowed to
        ``orders:read`` keeps only that cell); for a ``from_scopes`` role (``restricted``), the
        row the scopes describe.
        """
        definition = self.roles[role]
        held = tuple(held)
        row: dict[str, Grant] = {}
        for resource in self.resources:
            if definition.from_scopes is not None:
                ownership: Ownership = definition.from_scopes
                candidates: tuple[Action, ...] = ACTIONS
            elif resource in definition.matrix:
                ownership = definition.matrix[resource].ownership
                candidates = definition.matrix[resource].actions
            else:
                continue
            actions = tuple(a for a in candidates if scope_rules.allows(held, action_scope(resource, a)))
            if actions:
                row[resource] = Grant(actions=actions, ownership=ownership)
        return row

    def _check_hasura_names(self) -> None:
        seen: dict[str, str] = {}
        for name in self.roles:
            hasura = self.hasura_role(name)
            if hasura in seen:
                raise ValueError(f"roles {seen[hasura]!r} and {name!r} share the Hasura role {hasura!r}")
            seen[hasura] = name
            if hasura == HASURA_ADMIN_ROLE:
                raise ValueError(
                    f"role {name!r} would be Hasura's built-in {HASURA_ADMIN_ROLE!r} role, which "
                    "bypasses every permission in every org; give it another hasura_role"
                )

    def hasura_role(self, role: str) -> str:
        """The name Hasura knows ``role`` by."""
        return self.roles[role].hasura_role or role

    def is_known_scope(self, scope: str) -> bool:
        """A scope of the table, or a wildcard pattern that covers at least one scope of the table."""
        if scope in self.scopes:
            return True
        parts = scope_rules.split(scope)
        if parts is None or scope_rules.WILDCARD not in parts:
            return False
        return any(scope_rules.covers(scope, known) for known in self.scopes if known != scope_rules.ADMIN)


class Policy:
    """Questions about roles, scopes and the matrix, answered from the role model."""

    #: distinct (scopes, role) answers remembered; a key's scopes are few and fixed, so this holds
    #: every key in use, and a flood of new ones only clears it
    MEMO_ENTRIES = 4096

    def __init__(self, model: RoleModel) -> None:
        self._model = model
        # The webhook asks these two of every request; the answers depend on the (immutable) model
        # and the arguments only, and wildcard matching costs a fifth of a webhook call uncached.
        self._within_role: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}
        self._held_to_scopes: dict[tuple[str, tuple[str, ...], str], bool] = {}

    @property
    def model(self) -> RoleModel:
        return self._model

    def has_role(self, role: str) -> bool:
        return role in self._model.roles

    def role_scopes(self, role: str) -> tuple[str, ...]:
        return self._model.roles[role].scopes

    def acts_as(self, role: str) -> tuple[str, ...]:
        return self._model.roles[role].acts_as

    def hasura_role(self, role: str) -> str:
        """The role name to put in ``x-hasura-role``/allowed roles for our ``role``."""
        return self._model.hasura_role(role) if role in self._model.roles else role

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
                f"a credential with role {grantor.role} cannot create or manage one with role {role}",
                reason="role_escalation",
            )
        missing = scope_rules.within(grantor.scopes, requested_scopes)
        if missing:
            raise Forbidden(
                f"this credential cannot grant scope(s) it does not hold: {', '.join(missing)}",
                reason="scope_escalation",
            )

    def effective_row(self, role: str, held: Iterable[str]) -> dict[str, Grant]:
        """The matrix row of ``role`` as far as the scopes ``held`` reach (``RoleModel.row``)."""
        return self._model.row(role, held) if role in self._model.roles else {}

    def within_role(self, held: Iterable[str], role: str) -> tuple[str, ...]:
        """The part of ``held`` that ``role``'s scopes allow: scopes it allows are kept as they are,
        and a wider one (``admin``, ``orders:*``) gives way to the scopes of the table it covers
        that the role allows. Empty when the role allows none of them."""
        memo_key = (tuple(held), role)
        found = self._within_role.get(memo_key)
        if found is None:
            found = remember(
                self._within_role, memo_key, self._within_role_uncached(*memo_key), bound=self.MEMO_ENTRIES
            )
        return found

    def _within_role_uncached(self, held: tuple[str, ...], role: str) -> tuple[str, ...]:
        allowed = self.role_scopes(role)
        kept: dict[str, None] = {}
        for scope in held:
            if scope_rules.allows(allowed, scope):
                kept[scope] = None
                continue
            for known in self._model.scopes:
                if scope_rules.covers(scope, known) and scope_rules.allows(allowed, known):
                    kept[known] = None
        return tuple(kept)

    def scopes_acting_as(self, principal: Principal, role: str) -> tuple[str, ...]:
        """The scopes a credential has while acting as ``role``: its own, within what ``role`` allows.

        An admin key acting as viewer writes nothing. Acting as its own role, or as a role whose
        row its scopes describe (``restricted``), it keeps them all; an unknown role gets none.
        """
        chosen = self._model.roles.get(role)
        if role == principal.role or (chosen is not None and chosen.from_scopes is not None):
            return principal.scopes
        return self.within_role(principal.scopes, role) if chosen is not None else ()

    def held_to_scopes(self, principal: Principal, role: str) -> bool:
        """Would Hasura's permissions for ``role`` alone give this caller more than its scopes?

        True when acting as a role whose row comes from each key's scopes (``restricted``), and
        for a credential whose scopes fall short of its own role's (a key narrowed to
        ``orders:read``): the webhook then checks each root field's scope itself. Acting as a
        role that ``acts_as`` allows is the roles file's own grant, not an excess.
        """
        memo_key = (principal.role, principal.scopes, role)
        found = self._held_to_scopes.get(memo_key)
        if found is None:
            found = remember(
                self._held_to_scopes, memo_key, self._held_to_scopes_uncached(*memo_key), bound=self.MEMO_ENTRIES
            )
        return found

    def _held_to_scopes_uncached(self, own_role: str, scopes: tuple[str, ...], role: str) -> bool:
        chosen = self._model.roles.get(role)
        own = self._model.roles.get(own_role)
        if chosen is None or own is None or chosen.from_scopes is not None:
            return True
        return bool(scope_rules.within(scopes, own.scopes))

    def all_orgs(self, held: Iterable[str]) -> bool:
        """Whether the held scopes lift the "inside the caller's org" rule."""
        return scope_rules.allows(held, ALL_ORGS_SCOPE)


def matrix_json(row: Mapping[str, Grant]) -> dict[str, dict[str, object]]:
    """A matrix row as plain JSON data."""
    return {resource: {"actions": list(g.actions), "ownership": g.ownership} for resource, g in row.items()}
