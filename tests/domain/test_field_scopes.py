"""The scopes an operation's root fields need, read through tables.yaml."""

from __future__ import annotations

import pytest
from graphql import parse

from sidecar.domain.field_scopes import FieldRequirement, FieldScopes, root_field_names
from sidecar.domain.rbac import Policy
from sidecar.domain.tables import TableModel
from sidecar.errors import Unauthorized
from sidecar.models import CredentialType, Environment, Principal
from sidecar.settings import load_role_model, load_table_model


@pytest.fixture(scope="module")
def tables() -> TableModel:
    return load_table_model(None, load_role_model(None))


@pytest.fixture(scope="module")
def fields(tables: TableModel) -> FieldScopes:
    return FieldScopes(tables)


def needs(fields: FieldScopes, query: str, name: str | None = None) -> list[tuple[str, str | None]]:
    return [(r.field, r.scope) for r in fields.for_operation(parse(query), name)]


@pytest.mark.parametrize(
    ("field", "scope"),
    [
        ("orders", "orders:read"),
        ("orders_by_pk", "orders:read"),
        ("orders_aggregate", "orders:read"),
        ("orders_stream", "orders:read"),
        ("insert_orders", "orders:write"),
        ("insert_orders_one", "orders:write"),
        ("update_orders", "orders:write"),
        ("update_orders_by_pk", "orders:write"),
        ("update_orders_many", "orders:write"),
        ("delete_orders", "orders:write"),
        ("delete_orders_by_pk", "orders:write"),
        ("customers", "customers:read"),
        ("delete_returns_by_pk", "returns:write"),
        ("inventory_aggregate", "inventory:read"),
    ],
)
def test_each_root_field_needs_its_resources_scope(fields: FieldScopes, field: str, scope: str) -> None:
    assert fields.requirements([field]) == (FieldRequirement(field, scope),)


def test_a_query_needs_read_and_a_mutation_write(fields: FieldScopes) -> None:
    assert needs(fields, "query { orders { id } customers_by_pk(id: 1) { id } }") == [
        ("orders", "orders:read"),
        ("customers_by_pk", "customers:read"),
    ]
    assert needs(fields, 'mutation { insert_orders_one(object: {note: "x"}) { id } }') == [
        ("insert_orders_one", "orders:write")
    ]
    assert needs(fields, "subscription { orders_stream(batch_size: 1, cursor: {initial_value: {id: 0}}) { id } }") == [
        ("orders_stream", "orders:read")
    ]


def test_aliases_and_fragments_do_not_hide_a_root_field(fields: FieldScopes) -> None:
    query = """
    query Q { mine: orders { id } ...More ... on query_root { returns { id } } }
    fragment More on query_root { secret: customers { id } ...Again }
    fragment Again on query_root { ...More settings { id } }
    """
    assert [f for f, _ in needs(fields, query, "Q")] == ["orders", "customers", "settings", "returns"]


def test_the_named_operation_is_read_and_an_unnamed_choice_reads_them_all(fields: FieldScopes) -> None:
    document = "query A { orders { id } } mutation B { delete_customers(where: {}) { affected_rows } }"
    assert needs(fields, document, "A") == [("orders", "orders:read")]
    assert needs(fields, document, "B") == [("delete_customers", "customers:write")]
    assert [f for f, _ in needs(fields, document)] == ["orders", "delete_customers"]
    assert [f for f, _ in needs(fields, document, "C")] == ["orders", "delete_customers"]


def test_introspection_needs_no_scope(fields: FieldScopes) -> None:
    assert needs(fields, '{ __typename __schema { types { name } } __type(name: "x") { name } }') == []


def test_unknown_root_fields_are_refused_unless_configured(tables: TableModel, fields: FieldScopes) -> None:
    assert fields.refused(["orders", "my_action"], ["orders:read"]) == [FieldRequirement("my_action", None)]
    with pytest.raises(Unauthorized, match="no table declares the root field my_action") as caught:
        fields.check(["my_action"], ["admin"])
    assert caught.value.reason == "root_field_unknown"
    lenient = FieldScopes(tables.model_copy(update={"unknown_root_fields": "allow"}))
    assert lenient.refused(["orders", "my_action"], ["orders:read"]) == []


def test_check_names_the_missing_scope_and_the_field(fields: FieldScopes) -> None:
    fields.check(["orders", "orders_aggregate"], ["orders:read"])
    fields.check(["insert_orders", "returns"], ["orders:*", "*:read"])
    with pytest.raises(Unauthorized, match="lacks the scope orders:write that the root field insert_orders needs"):
        fields.check(["orders", "insert_orders"], ["orders:read"])
    with pytest.raises(Unauthorized, match="customers:read"):
        fields.check(["orders", "customers"], ["orders:read"])


def principal(role: str, scopes: tuple[str, ...]) -> Principal:
    return Principal(
        credential_type=CredentialType.API_KEY,
        subject="key_1",
        org_id="org_1",
        role=role,
        allowed_roles=(role,),
        scopes=scopes,
        environment=Environment.LIVE,
    )


def test_who_is_held_to_scopes() -> None:
    policy = Policy(load_role_model(None))
    operator = policy.role_scopes("operator")
    assert policy.held_to_scopes(principal("restricted", ("orders:read",)), "restricted")
    assert policy.held_to_scopes(principal("operator", ("orders:read",)), "operator")
    assert policy.held_to_scopes(principal("operator", ("orders:read",)), "viewer")
    assert not policy.held_to_scopes(principal("operator", operator), "operator")
    assert not policy.held_to_scopes(principal("operator", operator), "viewer")
    assert not policy.held_to_scopes(principal("super_admin", ("admin", "system:orgs")), "admin")
    assert policy.held_to_scopes(principal("operator", operator), "no_such_role")


def test_root_field_names_of_a_document() -> None:
    assert root_field_names(parse("{ a b { c } a }"), None) == ("a", "b")
