"""The role model against the seed: every cell of its permission matrix, and the start-up checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.domain import scopes
from sidecar.domain.rbac import ACTIONS, Policy, RoleModel, action_scope
from sidecar.errors import ConfigError
from sidecar.models import CredentialType, Environment, Principal
from sidecar.settings import default_roles_text, load_role_model

# The seed's permission matrix, as issue 6 reads it cell by cell (— = no access; every grant is
# inside the caller's org). super_admin has everything admin has, plus system configuration.
SEED_MATRIX = """
| resource | anonymous | viewer | operator | manager | admin |
|---|---|---|---|---|---|
| orders | — | read | CRUD own | CRUD team | CRUD all |
| customers | — | read | read own | CRUD team | CRUD all |
| inventory | read | read | read | CRUD | CRUD |
| returns | — | read | CRUD own | CRUD team | CRUD all |
| reports | — | read | read own | read team | CRUD |
| settings | — | — | read own | update team | CRUD |
"""

# The seed's role table: role -> key prefix.
SEED_PREFIXES = {
    "viewer": "rk_view_",
    "operator": "sk_live_",
    "manager": "sk_mgr_",
    "admin": "sk_admin_",
    "super_admin": "sk_super_",
}


def parse_cell(cell: str) -> tuple[set[str], str] | None:
    """``"CRUD team"`` -> ({create, read, update, delete}, "team"); no qualifier means all rows."""
    if cell == "—":
        return None
    what, _, ownership = cell.partition(" ")
    actions = set(ACTIONS) if what == "CRUD" else {what}
    return actions, ownership or "all"


def seed_cells() -> list[tuple[str, str, tuple[set[str], str] | None]]:
    lines = [ln for ln in SEED_MATRIX.strip().splitlines() if not ln.startswith("|---")]
    header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    cells = []
    for line in lines[1:]:
        resource, *row = (c.strip() for c in line.strip("|").split("|"))
        for role, cell in zip(header, row, strict=True):
            cells.append((resource, role, parse_cell(cell)))
            if role == "admin":
                cells.append((resource, "super_admin", parse_cell(cell)))
    return cells


@pytest.fixture(scope="module")
def model() -> RoleModel:
    return load_role_model(None)


@pytest.mark.parametrize(("resource", "role", "expected"), seed_cells(), ids=lambda v: str(v))
def test_every_cell_of_the_seed_matrix(
    model: RoleModel, resource: str, role: str, expected: tuple[set[str], str] | None
) -> None:
    grant = model.roles[role].matrix.get(resource)
    if expected is None:
        assert grant is None
        assert not any(scopes.allows(model.roles[role].scopes, f"{resource}:{k}") for k in ("read", "write"))
        return
    actions, ownership = expected
    assert grant is not None
    assert set(grant.actions) == actions
    assert grant.ownership == ownership
    # the role's default scopes back exactly the cell: each action's scope is held
    for action in ACTIONS:
        held = scopes.allows(model.roles[role].scopes, action_scope(resource, action))
        assert held or action not in actions


def test_the_matrix_has_no_rows_beyond_the_seed(model: RoleModel) -> None:
    assert set(model.resources) == {"orders", "customers", "inventory", "returns", "reports", "settings"}
    for role in ("anonymous", "viewer", "operator", "manager", "admin", "super_admin"):
        seeded = {r for r, ro, cell in seed_cells() if ro == role and cell is not None}
        assert set(model.roles[role].matrix) == seeded


@pytest.mark.parametrize(("role", "prefix"), SEED_PREFIXES.items())
def test_key_prefixes_follow_the_seed(model: RoleModel, role: str, prefix: str) -> None:
    assert model.roles[role].key_prefix == prefix


def test_only_super_admin_reaches_system_configuration(model: RoleModel) -> None:
    policy = Policy(model)
    for name, role in model.roles.items():
        system = scopes.allows(role.scopes, "system:signing_keys") and scopes.allows(role.scopes, "system:orgs")
        assert system == (name == "super_admin")
        assert policy.all_orgs(role.scopes) == (name == "super_admin")


def test_no_role_becomes_hasuras_unrestricted_admin(model: RoleModel) -> None:
    policy = Policy(model)
    assert policy.hasura_role("admin") == "org_admin"
    assert all(policy.hasura_role(r) != "admin" for r in model.roles)


def test_restricted_row_comes_from_the_keys_scopes(model: RoleModel) -> None:
    row = Policy(model).effective_row("restricted", ["orders:read", "returns:*"])
    assert {r: (set(g.actions), g.ownership) for r, g in row.items()} == {
        "orders": ({"read"}, "all"),
        "returns": (set(ACTIONS), "all"),
    }


def test_a_narrowed_key_keeps_only_the_cells_its_scopes_reach(model: RoleModel) -> None:
    row = Policy(model).effective_row("operator", ["orders:read", "inventory:*"])
    assert {r: (g.actions, g.ownership) for r, g in row.items()} == {
        "orders": (("read",), "own"),
        "inventory": (("read",), "all"),
    }


# --- validation: a broken roles file fails with a message naming the entry ---------------------


def broken(edit: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_roles_text())
    edit(data)
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


BROKEN = [
    pytest.param(
        lambda d: d["roles"]["viewer"]["scopes"].append("orders:fly"),
        "role 'viewer' has unknown scope 'orders:fly'",
        id="unknown scope",
    ),
    pytest.param(
        lambda d: d["roles"]["viewer"]["acts_as"].append("admin"),
        "cycle in acts_as: admin -> viewer -> admin",
        id="cycle",
    ),
    pytest.param(
        lambda d: d["roles"]["operator"]["acts_as"].append("viewer"),
        "role 'operator' acts as 'viewer', whose orders cell (read all) is wider than its own "
        "(create, read, update, delete own); acting as a role may only narrow access",
        id="acts as a role with wider ownership",
    ),
    pytest.param(
        lambda d: d["roles"]["manager"]["acts_as"].append("operator"),
        "role 'manager' acts as 'operator', whose settings cell (read own) is wider than its own (update team)",
        id="acts as a role with wider actions",
    ),
    pytest.param(
        lambda d: d["roles"]["operator"]["acts_as"].append("restricted"),
        "role 'operator' acts as 'restricted', whose orders cell (create, read, update, delete all) is wider "
        "than its own (create, read, update, delete own)",
        id="acts as restricted, which takes the actor's scopes",
    ),
    pytest.param(lambda d: d["roles"].pop("manager"), "missing role(s) manager", id="missing role"),
    pytest.param(
        lambda d: d["roles"]["viewer"]["acts_as"].append("auditor"),
        "role 'viewer' acts as unknown role 'auditor'",
        id="unknown role in acts_as",
    ),
    pytest.param(
        lambda d: d["roles"]["viewer"]["matrix"].update(invoices={"actions": ["read"], "ownership": "all"}),
        "role 'viewer' has a matrix row for unknown resource 'invoices'",
        id="unknown resource",
    ),
    pytest.param(
        lambda d: d["scopes"].update({"invoices:read": "Read invoices"}),
        "scope 'invoices:read' names unknown resource 'invoices'",
        id="scope of unknown resource",
    ),
    pytest.param(
        lambda d: d["roles"]["viewer"]["matrix"].update(settings={"actions": ["read"], "ownership": "all"}),
        "role 'viewer' may read settings by its matrix, but its scopes lack settings:read",
        id="matrix beyond scopes",
    ),
    pytest.param(
        lambda d: d["roles"]["viewer"]["scopes"].append("settings:read"),
        "role 'viewer' holds settings:read through its scopes, but its matrix gives it no read access to settings",
        id="scope beyond matrix",
    ),
    pytest.param(
        lambda d: d["roles"]["admin"].pop("hasura_role"),
        "role 'admin' would be Hasura's built-in 'admin' role",
        id="hasura admin",
    ),
    pytest.param(
        lambda d: d["roles"]["viewer"]["matrix"]["orders"].update(ownership="mine"),
        "roles.viewer.matrix.orders.ownership",
        id="bad ownership",
    ),
]


@pytest.mark.parametrize(("edit", "message"), BROKEN)
def test_a_broken_roles_file_is_refused_naming_the_entry(tmp_path: Path, edit: Any, message: str) -> None:
    path = write(tmp_path, broken(edit))
    with pytest.raises(ConfigError) as caught:
        load_role_model(path)
    assert message in caught.value.message
    assert str(path) in caught.value.message


def test_an_unreadable_roles_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "roles.yaml"
    path.write_text("roles: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"cannot read roles file {path}"):
        load_role_model(path)
    with pytest.raises(ConfigError, match="cannot read roles file"):
        load_role_model(tmp_path / "missing.yaml")


# --- acting as another role, and roles narrowed after a key was made ---------------------------


def test_within_role_keeps_what_the_role_still_allows(model: RoleModel) -> None:
    policy = Policy(model)
    assert policy.within_role(("orders:read", "orders:write"), "viewer") == ("orders:read",)
    assert policy.within_role(("orders:*", "inventory:read"), "viewer") == ("orders:read", "inventory:read")
    assert policy.within_role(("admin",), "viewer") == policy.role_scopes("viewer")
    assert policy.within_role(("admin", "system:orgs"), "admin") == ("admin",)
    assert policy.within_role(("settings:write",), "viewer") == ()


def test_a_credential_acting_as_another_role_has_only_that_roles_scopes(model: RoleModel) -> None:
    policy = Policy(model)
    admin = Principal(
        credential_type=CredentialType.API_KEY,
        subject="k",
        org_id="org_1",
        role="admin",
        allowed_roles=policy.acts_as("admin"),
        scopes=("admin",),
        environment=Environment.LIVE,
    )
    assert policy.scopes_acting_as(admin, "admin") == ("admin",)
    assert policy.scopes_acting_as(admin, "viewer") == policy.role_scopes("viewer")
    assert policy.scopes_acting_as(admin, "anonymous") == ("inventory:read",)
    assert policy.scopes_acting_as(admin, "restricted") == ("admin",)  # its row is what the key's scopes describe
    assert policy.scopes_acting_as(admin, "no_such_role") == ()


def test_remembered_answers_match_fresh_ones_and_the_memo_stays_bounded(model: RoleModel) -> None:
    policy = Policy(model)
    fresh = Policy(model)
    known = sorted(model.scopes)
    for i in range(Policy.MEMO_ENTRIES + 50):  # more distinct scope sets than the memo holds
        held = (known[i % len(known)], known[(i * 7) % len(known)], f"orders:x{i}")
        for role in ("viewer", "operator", "admin"):
            principal = Principal(
                credential_type=CredentialType.API_KEY,
                subject="k",
                org_id="org_1",
                role=role,
                allowed_roles=policy.acts_as(role),
                scopes=held,
                environment=Environment.LIVE,
            )
            assert policy.within_role(held, role) == fresh._within_role_uncached(held, role)
            assert policy.within_role(held, role) == policy.within_role(list(held), role)  # any iterable
            assert policy.held_to_scopes(principal, role) is fresh._held_to_scopes_uncached(role, held, role)
    assert len(policy._within_role) <= Policy.MEMO_ENTRIES
    assert len(policy._held_to_scopes) <= Policy.MEMO_ENTRIES
