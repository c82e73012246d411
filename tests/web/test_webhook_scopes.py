"""The webhook holds restricted (and narrowed) keys to their scopes, root field by root field.

Over real HTTP, called as Hasura v2 (GET, POST) and v3 (POST without the request) call it.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings, load_role_model, load_table_model
from tests.conftest import Bootstrap, ClientFactory
from tests.web.test_hasura_webhook import hook_get, hook_post, new_key

Client = TestClient[Any, Any]


def op(query: str, name: str | None = None) -> dict[str, Any]:
    return {"query": query, "operationName": name, "variables": {}}


READ_ORDERS = op("query Orders { orders(limit: 5) { id } orders_aggregate { aggregate { count } } }", "Orders")
READ_CUSTOMERS = op("query { customers { id } }")
HIDDEN_CUSTOMERS = op("query Q { orders { id } ...More } fragment More on query_root { c: customers { id } }", "Q")
INSERT_ORDER = op('mutation { insert_orders_one(object: {note: "x"}) { id } }')
DELETE_CUSTOMER = op("mutation { delete_customers_by_pk(id: 1) { id } }")
UNKNOWN_FIELD = op("query { my_remote_schema_field { id } }")
INTROSPECTION = op("query { __typename __schema { queryType { name } } }")


async def restricted(client: Client, admin_key: str, *scopes: str) -> dict[str, str]:
    key = await new_key(client, admin_key, type="restricted", permissions=list(scopes))
    return {"Authorization": f"Bearer {key}"}


async def test_a_restricted_key_runs_what_its_scopes_reach(client: Client, admin_key: str) -> None:
    auth = await restricted(client, admin_key, "orders:read")
    view = await hook_post(client, READ_ORDERS, **auth)
    assert view.role == "restricted"
    assert view.session["x-hasura-key-id"].startswith("key_")
    assert (await hook_post(client, INTROSPECTION, **auth)).role == "restricted"
    assert (await hook_post(client, [READ_ORDERS, READ_ORDERS], **auth)).role == "restricted"


@pytest.mark.parametrize(
    "request_value",
    [READ_CUSTOMERS, HIDDEN_CUSTOMERS, INSERT_ORDER, DELETE_CUSTOMER, UNKNOWN_FIELD, [READ_ORDERS, READ_CUSTOMERS]],
    ids=["query other table", "fragment", "mutation", "mutation other table", "unknown field", "batch"],
)
async def test_a_restricted_key_is_refused_outside_its_scopes(
    client: Client, admin_key: str, request_value: Any
) -> None:
    auth = await restricted(client, admin_key, "orders:read")
    assert (await hook_post(client, request_value, **auth)).denied


async def test_write_scopes_allow_mutations_on_their_table_only(client: Client, admin_key: str) -> None:
    auth = await restricted(client, admin_key, "orders:*", "customers:read")
    assert (await hook_post(client, INSERT_ORDER, **auth)).role == "restricted"
    assert (await hook_post(client, READ_CUSTOMERS, **auth)).role == "restricted"
    assert (await hook_post(client, DELETE_CUSTOMER, **auth)).denied


async def test_a_key_narrowed_below_its_role_is_held_to_its_scopes(client: Client, admin_key: str) -> None:
    key = await new_key(client, admin_key, role="operator", permissions=["orders:read", "orders:write"])
    auth = {"Authorization": f"Bearer {key}"}
    assert (await hook_post(client, INSERT_ORDER, **auth)).role == "operator"
    assert (await hook_post(client, op("query { returns { id } }"), **auth)).denied
    full = {"Authorization": f"Bearer {await new_key(client, admin_key, role='operator')}"}
    assert (await hook_post(client, op("query { returns { id } }"), **full)).role == "operator"
    assert (await hook_post(client, UNKNOWN_FIELD, **full)).role == "operator"  # Hasura's permissions decide


async def test_without_the_operation_a_restricted_key_is_refused_by_default(client: Client, admin_key: str) -> None:
    auth = await restricted(client, admin_key, "orders:read")
    assert (await hook_get(client, **auth)).denied
    assert (await hook_post(client, v3=True, **auth)).denied
    operator = await new_key(client, admin_key, role="operator")
    assert (await hook_get(client, Authorization=f"Bearer {operator}")).role == "operator"


async def test_without_the_operation_a_restricted_key_passes_when_hasura_checks_scopes(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    roles = load_role_model(None)
    tables = load_table_model(None, roles).model_copy(update={"unseen_operations": "allow"})
    bootstrap = Bootstrap()
    client = await aiohttp_client(create_app(settings, clock=clock, roles=roles, tables=tables, on_bootstrap=bootstrap))
    auth = await restricted(client, bootstrap.key, "orders:read")
    assert (await hook_get(client, **auth)).role == "restricted"
    assert (await hook_post(client, READ_CUSTOMERS, **auth)).denied  # what it can see is still checked


async def test_the_session_carries_hasura_role_names(client: Client, admin_key: str) -> None:
    admin = {"Authorization": f"Bearer {await new_key(client, admin_key, role='admin')}"}
    assert (await hook_post(client, READ_ORDERS, **admin)).role == "org_admin"
    supers = {"Authorization": f"Bearer {admin_key}"}
    assert (await hook_post(client, READ_ORDERS, **supers)).role == "super_admin"
    for name in ("admin", "org_admin"):
        view = await hook_post(client, READ_ORDERS, **supers, **{"X-Hasura-Role": name})
        assert view.role == "org_admin"
