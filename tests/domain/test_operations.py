"""Reading the GraphQL operation Hasura forwards in POST mode, and refusing what a credential may not run."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.domain.field_scopes import ScopeGate
from sidecar.domain.operations import OperationPolicy, OperationReader, OperationType, Unreadable, may_write
from sidecar.domain.rbac import Policy
from sidecar.errors import Unauthorized
from sidecar.models import CredentialType, Environment, Principal
from sidecar.settings import load_role_model, load_table_model

Q = OperationType.QUERY
M = OperationType.MUTATION
S = OperationType.SUBSCRIPTION


def read(request: object) -> list[tuple[OperationType, tuple[str, ...]]]:
    return [(op.type, op.root_fields) for op in OperationReader().read(request)]


def test_reads_type_and_root_fields_through_aliases_and_fragments() -> None:
    query = """
        query Orders { a: orders { id } ...F ... on query_root { customers { id } } }
        fragment F on query_root { inventory { sku } __typename }
    """
    assert read({"query": query}) == [(Q, ("orders", "inventory", "__typename", "customers"))]
    assert read({"query": "{ orders { id } }"}) == [(Q, ("orders",))]
    assert read({"query": "mutation { insert_orders_one(object: {}) { id } }"}) == [(M, ("insert_orders_one",))]
    assert read({"query": "subscription S { orders { id } }", "variables": None}) == [(S, ("orders",))]


def test_operation_name_selects_the_operation() -> None:
    doc = "query Read { orders { id } } mutation Write { delete_orders(where: {}) { affected_rows } }"
    assert read({"query": doc, "operationName": "Write"}) == [(M, ("delete_orders",))]
    assert read({"query": doc, "operationName": "Read"}) == [(Q, ("orders",))]
    with pytest.raises(Unreadable, match="operation_ambiguous"):
        read({"query": doc})
    with pytest.raises(Unreadable, match="operation_not_found"):
        read({"query": doc, "operationName": "Nope"})
    with pytest.raises(Unreadable, match="operation_name_invalid"):
        read({"query": doc, "operationName": 7})


def test_batches_and_null() -> None:
    batch = [{"query": "{ orders { id } }"}, {"query": "mutation { update_orders(where: {}) { affected_rows } }"}]
    assert [t for t, _ in read(batch)] == [Q, M]
    with pytest.raises(Unreadable, match="batch_empty"):
        read([])


def test_null_is_unreadable_not_an_empty_request() -> None:
    with pytest.raises(Unreadable, match="request_null"):
        read(None)
    with pytest.raises(Unreadable, match="request_not_object"):
        read([None])


@pytest.mark.parametrize(
    ("request_value", "reason"),
    [
        ({"query": "{ orders { id }"}, "query_syntax_error"),
        ({"query": "fragment F on x { a }"}, "query_has_no_operation"),
        ({"variables": {}}, "query_missing"),
        ({"query": 42}, "query_missing"),
        ("{ orders { id } }", "request_not_object"),
        ([{"query": "{ a }"}, 3], "request_not_object"),
        ({"query": "{" * 5000 + "}" * 5000}, "query_syntax_error"),
        ({"query": "{ " + "a " * 30_000 + "}"}, "query_syntax_error"),
    ],
)
def test_unreadable_requests_say_why(request_value: Any, reason: str) -> None:
    with pytest.raises(Unreadable, match=reason):
        OperationReader().read(request_value)


def test_documents_are_cached_by_text_in_a_bounded_lru() -> None:
    reader = OperationReader(max_entries=2)
    for text in ("{ a }", "{ b }", "{ a }", "{ c }"):
        reader.read({"query": text})
    assert len(reader) == 2
    assert reader.document("{ a }") is reader.document("{ a }")
    assert len(OperationReader(max_entries=0).read({"query": "{ a }"})) == 1


@pytest.mark.parametrize(
    ("granted", "writes"),
    [
        ((), False),
        (("orders:read", "inventory:read"), False),
        (("*:read",), False),
        (("system:signing_keys", "system:orgs"), False),
        (("orders:write",), True),
        (("returns:*",), True),
        (("*:*",), True),
        (("admin",), True),
    ],
)
def test_may_write(granted: tuple[str, ...], writes: bool) -> None:
    assert may_write(granted) is writes


def principal(scopes: tuple[str, ...], role: str = "viewer") -> Principal:
    return Principal(CredentialType.API_KEY, "key_1", "org", role, (role,), scopes, Environment.LIVE)


def test_policy_refuses_mutations_without_write_scope_and_unreadable_requests() -> None:
    policy = OperationPolicy(OperationReader())
    reader_only = principal(("orders:read",))
    policy.check(reader_only, "viewer", {"query": "{ orders { id } }"})
    with pytest.raises(Unauthorized) as denied:
        policy.check(reader_only, "viewer", [{"query": "{ a }"}, {"query": "mutation { b }"}])
    assert denied.value.reason == "mutation_not_allowed"
    with pytest.raises(Unauthorized) as denied:
        policy.check(reader_only, "viewer", {"query": "mutation {"})
    assert denied.value.reason == "operation_query_syntax_error"


def test_policy_does_not_even_parse_for_a_credential_allowed_everything() -> None:
    reader = OperationReader()
    policy = OperationPolicy(reader)
    policy.check(principal(("orders:write",), "operator"), "operator", {"query": "mutation {"})
    assert len(reader) == 0


def test_subscriptions_only_for_listed_roles() -> None:
    policy = OperationPolicy(OperationReader(), subscription_roles=frozenset({"operator"}))
    sub = {"query": "subscription { orders { id } }"}
    policy.check(principal(("orders:write",), "operator"), "operator", sub)
    with pytest.raises(Unauthorized) as denied:
        policy.check(principal(("orders:write",), "manager"), "manager", sub)
    assert denied.value.reason == "subscription_not_allowed"


def gated_policy(*, subscription_roles: frozenset[str] | None = None, unseen: str = "refuse") -> OperationPolicy:
    roles = Policy(load_role_model(None))
    tables = load_table_model(None, load_role_model(None)).model_copy(update={"unseen_operations": unseen})
    return OperationPolicy(OperationReader(), subscription_roles=subscription_roles, gate=ScopeGate(roles, tables))


def test_null_request_is_an_unseen_operation_for_a_caller_held_to_its_scopes() -> None:
    """``request: null`` (a websocket's connection_init) hides every operation that follows."""
    restricted = principal(("inventory:read",), "restricted")
    policy = gated_policy()
    policy.check(restricted, "restricted", {"query": "{ inventory { sku } }"})
    with pytest.raises(Unauthorized) as denied:
        policy.check(restricted, "restricted", None)
    assert denied.value.reason == "operation_not_sent"
    with pytest.raises(Unauthorized) as denied:
        policy.check_unseen(restricted, "restricted")  # exactly as if ``request`` were absent
    assert denied.value.reason == "operation_not_sent"
    gated_policy(unseen="allow").check(restricted, "restricted", None)  # Hasura checks scopes in the database


def test_null_request_is_refused_where_the_role_may_not_subscribe() -> None:
    roles = Policy(load_role_model(None))
    policy = gated_policy(subscription_roles=frozenset({"operator"}))
    policy.check(principal(roles.role_scopes("operator"), "operator"), "operator", None)
    with pytest.raises(Unauthorized) as denied:
        policy.check(principal(roles.role_scopes("manager"), "manager"), "manager", None)
    assert denied.value.reason == "subscription_not_allowed"
    without_gate = OperationPolicy(OperationReader(), subscription_roles=frozenset())
    with pytest.raises(Unauthorized) as denied:
        without_gate.check(principal(("orders:read",)), "viewer", None)
    assert denied.value.reason == "subscription_not_allowed"


def test_null_request_passes_a_read_only_caller_hasura_fully_describes() -> None:
    """No mutation can be seen over a websocket; refusing ``null`` here would forbid every
    read-only websocket. Hasura's role permissions decide, as in GET mode."""
    policy = gated_policy()
    policy.check(principal(Policy(load_role_model(None)).role_scopes("viewer"), "viewer"), "viewer", None)
    OperationPolicy(OperationReader()).check(principal(("orders:read",)), "viewer", None)
