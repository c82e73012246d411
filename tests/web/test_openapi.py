"""``GET /openapi.json``: every route of the app is in the document, and nothing else is."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from sidecar.web.api_spec import operations
from sidecar.web.keys import CreateKeyBody
from sidecar.web.tokens import TokenBody

Client = TestClient[Any, Any]
METHODS = {"get", "post", "put", "patch", "delete", "options"}


def app_routes(client: Client) -> set[tuple[str, str]]:
    """(method, path template) of every route, less the HEAD aiohttp adds beside each GET."""
    app = client.server.app
    assert app is not None
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


async def spec(client: Client) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    document: dict[str, Any] = await resp.json()
    return document


async def test_every_route_is_in_the_document_and_the_document_names_no_other(client: Client) -> None:
    document = await spec(client)
    documented = {(method, path) for path, item in document["paths"].items() for method in item if method in METHODS}
    routes = app_routes(client)
    assert routes - documented == set(), "routes missing from api_spec.py"
    assert documented - routes == set(), "api_spec.py documents routes the app does not serve"
    assert len(operations()) == len(documented)


async def test_it_is_openapi_3_1_with_every_reference_resolved(client: Client) -> None:
    document = await spec(client)
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            here = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return here + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_bodies_are_the_handlers_own_models(client: Client) -> None:
    document = await spec(client)
    schemas = document["components"]["schemas"]
    own = CreateKeyBody.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
    own.pop("$defs", None)
    assert schemas["CreateKeyBody"] == own
    create = document["paths"]["/v1/api_keys"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateKeyBody"}
    token = document["paths"]["/v1/auth/token"]["post"]
    assert token["requestBody"]["required"] is False
    assert set(schemas["TokenBody"]["properties"]) == set(TokenBody.model_fields)


async def test_errors_are_documented_in_the_contract_format(client: Client) -> None:
    document = await spec(client)
    show = document["paths"]["/v1/api_keys/{key_id}"]["get"]["responses"]
    assert {"200", "401", "403", "404", "429", "503"} <= set(show)
    assert show["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]
    token = document["paths"]["/oauth/token"]["post"]["responses"]
    assert token["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OAuthError"}
    for path in document["paths"].values():  # the HTTP parser's refusals, before any route is known
        for operation in path.values():
            for status in ("414", "431"):
                assert operation["responses"][status]["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }
