"""The table model: Hasura tables and their root fields mapped to resources, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.domain.tables import TableModel
from sidecar.errors import ConfigError
from sidecar.settings import default_tables_text, load_role_model, load_table_model

ORDERS_FIELDS = {
    "orders": "read",
    "orders_by_pk": "read",
    "orders_aggregate": "read",
    "orders_stream": "read",
    "insert_orders": "create",
    "insert_orders_one": "create",
    "update_orders": "update",
    "update_orders_by_pk": "update",
    "update_orders_many": "update",
    "delete_orders": "delete",
    "delete_orders_by_pk": "delete",
}


@pytest.fixture(scope="module")
def model() -> TableModel:
    return load_table_model(None, load_role_model(None))


def test_the_sample_covers_the_seed_resources(model: TableModel) -> None:
    assert {t.resource for t in model.tables} >= {"orders", "customers", "inventory", "returns"}
    orders = next(t for t in model.tables if t.name == "orders")
    assert (orders.schema_, orders.columns.org, orders.columns.team, orders.columns.owner) == (
        "public",
        "org_id",
        "team_id",
        "user_id",
    )


def test_each_root_field_of_a_table_performs_one_action(model: TableModel) -> None:
    index = model.root_field_index()
    assert {f: a for f, (t, a) in index.items() if t.name == "orders"} == ORDERS_FIELDS


def test_renamed_and_non_public_tables_get_hasuras_names() -> None:
    model = TableModel.model_validate(
        {
            "tables": [
                {"schema": "sales", "name": "orders", "resource": "orders", "columns": {"org": "org_id"}},
                {
                    "name": "customer",
                    "resource": "customers",
                    "columns": {"org": "org_id"},
                    "custom_name": "clients",
                    "root_fields": {"select_by_pk": "client"},
                },
            ]
        }
    )
    index = model.root_field_index()
    assert index["sales_orders"][1] == "read"
    assert index["insert_sales_orders_one"][1] == "create"
    assert index["client"][1] == "read"
    assert index["delete_clients"][1] == "delete"
    assert "clients_by_pk" not in index


def broken(edit: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_tables_text())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda d: d["tables"][0].update(resource="invoices"),
            "table public.orders maps to unknown resource 'invoices'",
            id="unknown resource",
        ),
        pytest.param(
            lambda d: d["tables"].append(dict(d["tables"][0])), "table public.orders is listed twice", id="twice"
        ),
        pytest.param(
            lambda d: d["tables"][1].update(root_fields={"select": "orders"}),
            "root field 'orders' belongs to both public.orders and public.customers",
            id="root field clash",
        ),
        pytest.param(
            lambda d: d["tables"][0]["columns"].pop("org"), "tables.0.columns.org: Field required", id="no org column"
        ),
        pytest.param(
            lambda d: d["tables"][0]["columns"].update(owner="user id; drop"),
            "tables.0.columns.owner: String should match pattern",
            id="bad column",
        ),
        pytest.param(
            lambda d: d.update(unknown_root_fields="maybe"), "unknown_root_fields: Input should be", id="bad setting"
        ),
    ],
)
def test_a_broken_tables_file_is_refused_naming_the_entry(tmp_path: Path, edit: Any, message: str) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(broken(edit)), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_table_model(path, load_role_model(None))
    assert str(path) in caught.value.message
    assert message in caught.value.message
