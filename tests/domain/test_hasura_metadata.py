"""The generated Hasura metadata: valid YAML in Hasura's shape, with the right filter per role and action.

Filters are checked by meaning, not only by text: a small evaluator of Hasura boolean expressions
(``_and``, ``_eq``, ``_in``, ``_exists``, session variables) runs them against rows and sessions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sidecar.cli import main
from sidecar.domain.hasura_metadata import metadata_files, table_entries
from sidecar.domain.rbac import RoleModel
from sidecar.domain.tables import TableModel
from sidecar.errors import ConfigError
from sidecar.settings import load_role_model, load_table_model
from tests.domain.test_rbac import seed_cells

ACTION_KEYS = {
    "read": "select_permissions",
    "create": "insert_permissions",
    "update": "update_permissions",
    "delete": "delete_permissions",
}
HASURA_ROLE = {"admin": "org_admin"}
TABLE_KEYS = {"table", "configuration", *ACTION_KEYS.values()}
PERMISSION_SHAPE = {
    "select_permissions": {"columns", "filter", "allow_aggregations"},
    "insert_permissions": {"check", "set", "columns"},
    "update_permissions": {"columns", "filter", "check"},
    "delete_permissions": {"filter"},
}


@pytest.fixture(scope="module")
def roles() -> RoleModel:
    return load_role_model(None)


@pytest.fixture(scope="module")
def tables(roles: RoleModel) -> TableModel:
    return load_table_model(None, roles)


@pytest.fixture(scope="module")
def by_table(roles: RoleModel, tables: TableModel) -> dict[str, dict[str, Any]]:
    """The metadata as Hasura would read it: the files parsed back, includes followed."""
    files = metadata_files(roles, tables)
    folder = "databases/default/tables"
    includes = yaml.safe_load(files[f"{folder}/tables.yaml"])
    entries = {}
    for include in includes:
        assert include.startswith("!include ")
        entry = yaml.safe_load(files[f"{folder}/{include.removeprefix('!include ')}"])
        entries[entry["table"]["name"]] = entry
    return entries


def permission(by_table: dict[str, dict[str, Any]], table: str, action: str, role: str) -> dict[str, Any] | None:
    found = [p for p in by_table[table].get(ACTION_KEYS[action], []) if p["role"] == HASURA_ROLE.get(role, role)]
    assert len(found) <= 1
    return found[0]["permission"] if found else None


# --- a tiny evaluator of Hasura boolean expressions --------------------------------------------


def evaluate(exp: dict[str, Any], row: dict[str, Any], session: dict[str, str], db: dict[str, list[Any]]) -> bool:
    def value(v: Any) -> Any:
        if isinstance(v, str) and v.lower().startswith("x-hasura-"):
            return session[v.lower()]  # a KeyError is Hasura's "missing session variable"
        return v

    for key, arg in exp.items():
        if key == "_and":
            if not all(evaluate(e, row, session, db) for e in arg):
                return False
        elif key == "_exists":
            rows = db[f"{arg['_table']['schema']}.{arg['_table']['name']}"]
            if not any(evaluate(arg["_where"], r, session, db) for r in rows):
                return False
        else:
            ((op, operand),) = arg.items()
            if op == "_eq" and row.get(key) != value(operand):
                return False
            if op == "_in" and row.get(key) not in [value(o) for o in operand]:
                return False
            assert op in ("_eq", "_in"), op
    return True


ME = {"x-hasura-org-id": "org_1", "x-hasura-team-id": "team_1", "x-hasura-user-id": "user_1"}
ROWS = {
    "mine": {"org_id": "org_1", "team_id": "team_1", "user_id": "user_1"},
    "teammate's": {"org_id": "org_1", "team_id": "team_1", "user_id": "user_2"},
    "other team's": {"org_id": "org_1", "team_id": "team_2", "user_id": "user_3"},
    "other org's": {"org_id": "org_2", "team_id": "team_1", "user_id": "user_1"},
}
VISIBLE = {
    "own": {"mine"},
    "team": {"mine", "teammate's"},
    "all": {"mine", "teammate's", "other team's"},
    "all orgs": set(ROWS),
}


@pytest.mark.parametrize(("resource", "role", "cell"), seed_cells(), ids=lambda v: str(v))
def test_every_cell_of_the_seed_matrix_becomes_hasura_permissions(
    by_table: dict[str, dict[str, Any]], resource: str, role: str, cell: tuple[set[str], str] | None
) -> None:
    for action in ACTION_KEYS:
        found = permission(by_table, resource, action, role)
        if cell is None or action not in cell[0]:
            assert found is None, (resource, role, action)
            continue
        assert found is not None, (resource, role, action)
        ownership = "all orgs" if role == "super_admin" else cell[1]
        row_filter = found["check"] if action == "create" else found["filter"]
        seen = {name for name, row in ROWS.items() if evaluate(row_filter, row, ME, {})}
        assert seen == VISIBLE[ownership], (resource, role, action)
        if action == "update":
            assert found["check"] == found["filter"]  # a row cannot be moved out of reach
        if action == "create":
            assert found["set"] == presets(ownership)


def presets(ownership: str) -> dict[str, str]:
    return {
        "own": {"org_id": "X-Hasura-Org-Id", "user_id": "X-Hasura-User-Id"},
        "team": {"org_id": "X-Hasura-Org-Id", "team_id": "X-Hasura-Team-Id"},
        "all": {"org_id": "X-Hasura-Org-Id"},
        "all orgs": {},
    }[ownership]


def test_the_files_are_hasura_metadata_v3_shape(by_table: dict[str, dict[str, Any]]) -> None:
    for entry in by_table.values():
        assert set(entry) <= TABLE_KEYS
        assert set(entry["table"]) == {"name", "schema"}
        for key, shape in PERMISSION_SHAPE.items():
            roles = [p["role"] for p in entry.get(key, [])]
            assert len(roles) == len(set(roles))
            assert "admin" not in roles  # Hasura refuses permissions for its built-in admin
            for item in entry.get(key, []):
                assert set(item) == {"role", "permission"}
                assert set(item["permission"]) == shape
                if "columns" in shape:
                    assert item["permission"]["columns"] == "*"


def test_the_includes_are_double_quoted_as_hasura_exports_them(roles: RoleModel, tables: TableModel) -> None:
    text = metadata_files(roles, tables)["databases/default/tables/tables.yaml"]
    assert '- "!include public_orders.yaml"' in text.splitlines()


def test_orders_select_filter_for_an_operator_is_exactly_own_rows_in_the_org(
    by_table: dict[str, dict[str, Any]],
) -> None:
    found = permission(by_table, "orders", "read", "operator")
    assert found is not None
    assert found["filter"] == {
        "_and": [{"org_id": {"_eq": "X-Hasura-Org-Id"}}, {"user_id": {"_eq": "X-Hasura-User-Id"}}]
    }


@pytest.mark.parametrize("action", ["read", "create", "update", "delete"])
def test_a_restricted_key_reaches_a_table_only_with_a_covering_scope(
    by_table: dict[str, dict[str, Any]], action: str
) -> None:
    found = permission(by_table, "orders", action, "restricted")
    assert found is not None
    row_filter = found["check"] if action == "create" else found["filter"]
    kind = "read" if action == "read" else "write"
    session = {**ME, "x-hasura-key-id": "key_1"}

    def allowed(*scopes: str, key: str = "key_1") -> bool:
        db = {"public.api_key_scopes": [{"key_id": key, "scope": s} for s in scopes]}
        return evaluate(row_filter, ROWS["teammate's"], session, db)

    assert allowed(f"orders:{kind}")
    assert allowed("orders:*")
    assert allowed(f"*:{kind}")
    assert allowed("admin")
    assert not allowed("customers:read", "customers:write", "returns:*")
    assert not allowed(f"orders:{'write' if kind == 'read' else 'read'}")
    assert not allowed(f"orders:{kind}", key="key_2")  # another key's scopes
    assert not evaluate(
        row_filter, ROWS["other org's"], session, {"public.api_key_scopes": [{"key_id": "key_1", "scope": "admin"}]}
    )


def test_the_key_scope_table_is_tracked_with_no_permission(by_table: dict[str, dict[str, Any]]) -> None:
    assert by_table["api_key_scopes"] == {"table": {"name": "api_key_scopes", "schema": "public"}}


def test_without_a_shared_database_the_restricted_role_has_org_filters_only(
    roles: RoleModel, tables: TableModel
) -> None:
    entries = {e["table"]["name"]: e for e in table_entries(roles, tables, key_scope_check=False)}
    assert "api_key_scopes" not in entries
    restricted = [p for p in entries["orders"]["select_permissions"] if p["role"] == "restricted"]
    assert restricted[0]["permission"]["filter"] == {"org_id": {"_eq": "X-Hasura-Org-Id"}}


def test_custom_root_fields_are_carried_into_the_table_configuration(roles: RoleModel) -> None:
    tables = TableModel.model_validate(
        {
            "tables": [
                {
                    "name": "order",
                    "resource": "orders",
                    "columns": {"org": "org_id", "team": "team_id", "owner": "user_id"},
                    "custom_name": "orders",
                    "root_fields": {"select_by_pk": "order"},
                }
            ]
        }
    )
    (entry, _) = table_entries(roles, tables)
    assert entry["configuration"] == {"custom_name": "orders", "custom_root_fields": {"select_by_pk": "order"}}


def test_a_table_without_the_owner_column_an_ownership_needs_is_refused(roles: RoleModel) -> None:
    tables = TableModel.model_validate(
        {"tables": [{"name": "orders", "resource": "orders", "columns": {"org": "org_id", "team": "team_id"}}]}
    )
    with pytest.raises(ConfigError, match=r"role 'operator' has own rows of orders, but table public\.orders"):
        table_entries(roles, tables)


def test_the_cli_writes_a_metadata_directory(tmp_path: Path) -> None:
    out = tmp_path / "metadata"
    (out / "databases").mkdir(parents=True)
    (out / "databases" / "databases.yaml").write_text("# mine\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["hasura", "metadata", "--tables", "config/tables.yaml", "--output", str(out)],
        env={"SIDECAR_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 0, result.output
    assert (out / "databases" / "databases.yaml").read_text(encoding="utf-8") == "# mine\n"  # never overwritten
    assert yaml.safe_load((out / "version.yaml").read_text(encoding="utf-8")) == {"version": 3}
    orders = yaml.safe_load((out / "databases/default/tables/public_orders.yaml").read_text(encoding="utf-8"))
    assert orders["table"] == {"name": "orders", "schema": "public"}


def test_the_cli_prints_the_tables_list_and_names_a_bad_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["hasura", "metadata"], env={"SIDECAR_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0
    assert [e["table"]["name"] for e in yaml.safe_load(result.output)][:2] == ["orders", "customers"]
    bad = tmp_path / "tables.yaml"
    bad.write_text("tables: []\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["hasura", "metadata", "--tables", str(bad)])
    assert result.exit_code == 2
    assert f"error: {bad}: tables:" in result.output
