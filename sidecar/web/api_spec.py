"""Every operation of the HTTP API, declared next to the route tables: the source of ``/openapi.json``.

One ``Operation`` per route, grouped as the handler modules are. Request bodies are the pydantic
models the handlers parse (``CreateKeyBody``, ``TokenBody``, …); responses are ``sidecar.web.wire``.
``tests/web/test_openapi.py`` holds this list and the app's router to each other both ways, and
the fuzz test holds the live responses to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sidecar.web import wire
from sidecar.web.cors import BROWSER_ROUTES
from sidecar.web.hasura_events import HasuraEventBody
from sidecar.web.keys import CreateKeyBody, RollKeyBody
from sidecar.web.oauth_clients import CreateClientBody
from sidecar.web.oauth_pages import STYLESHEET_PATH
from sidecar.web.revoke import RevokeBody
from sidecar.web.tokens import RotateBody, TokenBody
from sidecar.web.webhook_endpoints import CreateEndpointBody, RollSecretBody, UpdateEndpointBody

Auth = Literal["bearer", "public", "client", "metrics", "events", "page"]
#: A response is a model (JSON), or a media type whose body is not JSON.
Body = type[BaseModel] | str
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HTML = "text/html"


class HasuraWebhookBody(BaseModel):
    """POST mode (hasura-contract.md §2.2): the client's headers, and its GraphQL request (not in v3)."""

    model_config = ConfigDict(extra="allow")
    headers: dict[str, Any] = Field(description="the client's request headers")
    request: Any = Field(None, description="the GraphQL request: query, variables, operationName")


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str = ""


LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, "page size")
AFTER = Query("starting_after", description="the last id of the previous page")
KEY_TYPE = Query("type", {"enum": ["secret", "restricted", "publishable"]})


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    ok: Mapping[int, Body]
    auth: Auth = "bearer"
    body: type[BaseModel] | None = None
    body_type: str = JSON
    body_required: bool = True
    query: tuple[Query, ...] = ()
    #: error statuses beyond those every operation of its kind may answer (``errors_of``)
    errors: tuple[int, ...] = ()


def _keys() -> list[Operation]:
    one = "/v1/api_keys/{key_id}"
    return [
        Operation("POST", "/v1/api_keys", "Create an API key (the key is in this response only)", "API keys",
                  {201: wire.CreatedApiKey}, body=CreateKeyBody),
        Operation("GET", "/v1/api_keys", "List API keys", "API keys", {200: wire.ApiKeyList},
                  query=(LIMIT, AFTER, Query("org_id"), KEY_TYPE)),
        Operation("GET", one, "Show an API key", "API keys", {200: wire.ApiKey}, errors=(404,)),
        Operation("DELETE", one, "Revoke an API key", "API keys", {200: wire.ApiKey}, errors=(404, 409)),
        Operation("POST", one + "/roll", "Roll an API key: a new key; the old one lives until expires_in", "API keys",
                  {201: wire.RolledApiKey}, body=RollKeyBody, body_required=False, errors=(404, 409)),
    ]  # fmt: skip


def _auth() -> list[Operation]:
    return [
        Operation("GET", "/v1/auth/validate", "200 when the presented key or token is valid", "Auth",
                  {200: wire.Validation}),
        Operation("GET", "/v1/auth/permissions", "The caller's role, scopes and permission matrix", "Auth",
                  {200: wire.Permissions}),
        Operation("POST", "/v1/auth/token", "Exchange the presented API key for a session JWT (may only narrow)",
                  "Auth", {200: wire.SessionToken}, body=TokenBody, body_required=False),
        Operation("POST", "/v1/auth/revoke", "Revoke a session JWT (by token; by jti with the admin scope)", "Auth",
                  {200: wire.Revocation}, auth="public", body=RevokeBody, errors=(401, 403)),
    ]  # fmt: skip


def _tokens() -> list[Operation]:
    return [
        Operation("GET", "/.well-known/jwks.json", "Public signing keys (current, next, previous)", "Discovery",
                  {200: wire.Jwks}, auth="public"),
        Operation("GET", "/.well-known/openid-configuration", "Discovery document", "Discovery",
                  {200: wire.Discovery}, auth="public"),
        Operation("GET", "/v1/signing_keys", "List signing keys (system:signing_keys)", "Signing keys",
                  {200: wire.SigningKeyList}),
        Operation("POST", "/v1/signing_keys/rotate", "Stage a new signing key (immediate: sign with it now)",
                  "Signing keys", {201: wire.SigningKey}, body=RotateBody, body_required=False, errors=(409,)),
    ]  # fmt: skip


def _hasura() -> list[Operation]:
    return [
        Operation("GET", "/v1/hasura/webhook", "Hasura auth webhook, GET mode: the client's headers are ours",
                  "Hasura", {200: wire.HasuraSession}, auth="public", errors=(401,)),
        Operation("POST", "/v1/hasura/webhook", "Hasura auth webhook, POST mode", "Hasura",
                  {200: wire.HasuraSession}, auth="public", body=HasuraWebhookBody, errors=(401,)),
        Operation("POST", "/v1/hasura/events", "Hasura event trigger: queue signed deliveries", "Hasura",
                  {200: wire.AcceptedEvent}, auth="events", body=HasuraEventBody),
    ]  # fmt: skip


def _webhook_endpoints() -> list[Operation]:
    one = "/v1/webhook_endpoints/{endpoint_id}"
    return [
        Operation("POST", "/v1/webhook_endpoints", "Create a webhook endpoint (the secret is in this response only)",
                  "Webhook endpoints", {201: wire.CreatedWebhookEndpoint}, body=CreateEndpointBody),
        Operation("GET", "/v1/webhook_endpoints", "List webhook endpoints", "Webhook endpoints",
                  {200: wire.WebhookEndpointList}, query=(LIMIT, AFTER)),
        Operation("GET", one, "Show a webhook endpoint", "Webhook endpoints", {200: wire.WebhookEndpoint},
                  errors=(404,)),
        Operation("POST", one, "Update a webhook endpoint", "Webhook endpoints", {200: wire.WebhookEndpoint},
                  body=UpdateEndpointBody, errors=(404,)),
        Operation("DELETE", one, "Delete a webhook endpoint", "Webhook endpoints", {200: wire.WebhookEndpoint},
                  errors=(404,)),
        Operation("POST", one + "/roll_secret", "Roll the signing secret", "Webhook endpoints",
                  {201: wire.CreatedWebhookEndpoint}, body=RollSecretBody, body_required=False, errors=(404,)),
        Operation("GET", one + "/deliveries", "The endpoint's deliveries and their attempts", "Webhook endpoints",
                  {200: wire.ListOf}, query=(LIMIT, AFTER), errors=(404,)),
    ]  # fmt: skip


def _oauth() -> list[Operation]:
    return [
        Operation("GET", "/oauth/authorize", "The consent page (authorization code + PKCE, RFC 6749 §4.1.1)", "OAuth",
                  {200: HTML, 302: ""}, auth="page"),
        Operation("POST", "/oauth/authorize", "The consent page's sign-in, approve and deny", "OAuth",
                  {200: HTML, 303: ""}, auth="page", body=wire.SignInForm, body_type=FORM),
        Operation("GET", STYLESHEET_PATH, "The pages' stylesheet", "OAuth", {200: "text/css"},
                  auth="public"),
        Operation("POST", "/oauth/token", "Token endpoint (RFC 6749 §3.2)", "OAuth", {200: wire.OAuthTokens},
                  auth="client", body=wire.TokenForm, body_type=FORM),
        Operation("POST", "/oauth/revoke", "Revoke a token (RFC 7009)", "OAuth", {200: ""}, auth="client",
                  body=wire.TokenActionForm, body_type=FORM),
        Operation("POST", "/oauth/introspect", "Introspect a token (RFC 7662)", "OAuth", {200: wire.Introspection},
                  auth="client", body=wire.TokenActionForm, body_type=FORM),
        Operation("GET", "/.well-known/oauth-authorization-server", "Authorization server metadata (RFC 8414)",
                  "OAuth", {200: wire.ServerMetadata}, auth="public"),
    ]  # fmt: skip


def _oauth_clients() -> list[Operation]:
    one = "/v1/oauth/clients/{client_id}"
    return [
        Operation("POST", "/v1/oauth/clients", "Register an OAuth client (the secret is in this response only)",
                  "OAuth clients", {201: wire.CreatedOAuthClient}, body=CreateClientBody),
        Operation("GET", "/v1/oauth/clients", "List OAuth clients", "OAuth clients", {200: wire.OAuthClientList},
                  query=(LIMIT, AFTER)),
        Operation("GET", one, "Show an OAuth client", "OAuth clients", {200: wire.OAuthClient}, errors=(404,)),
        Operation("DELETE", one, "Delete an OAuth client", "OAuth clients", {200: wire.OAuthClient}, errors=(404,)),
    ]  # fmt: skip


def _pages() -> list[Operation]:
    page: dict[int, Body] = {200: HTML, 303: ""}
    one = "/dashboard/api_keys/{key_id}"
    client = "/dashboard/oauth_clients/{client_id}"
    endpoint = "/dashboard/webhook_endpoints/{endpoint_id}"
    return [
        Operation("GET", "/dashboard", "The operator's dashboard", "Dashboard", {302: "", 303: ""}, auth="page"),
        Operation("GET", "/dashboard/static/{filename}", "The dashboard's stylesheet and scripts", "Dashboard",
                  {200: "*/*"}, auth="public", errors=(404, 403)),
        Operation("GET", "/dashboard/login", "Sign-in page", "Dashboard", {200: HTML}, auth="page"),
        Operation("POST", "/dashboard/login", "Sign in with an admin key", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("POST", "/dashboard/logout", "Sign out", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("GET", "/dashboard/api_keys", "Settings → API Keys", "Dashboard", page, auth="page"),
        Operation("POST", "/dashboard/api_keys", "Create a key from the form", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("GET", one + "/revoke", "Confirm revoking a key", "Dashboard", page, auth="page"),
        Operation("GET", one + "/roll", "Confirm rolling a key", "Dashboard", page, auth="page"),
        Operation("POST", one + "/revoke", "Revoke a key", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("POST", one + "/roll", "Roll a key", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("GET", "/dashboard/signing_keys", "Signing keys", "Dashboard", page, auth="page"),
        Operation("POST", "/dashboard/signing_keys/rotate", "Rotate the signing key", "Dashboard", page,
                  auth="page", body=wire.SignInForm, body_type=FORM),
        Operation("GET", "/dashboard/oauth_clients", "OAuth clients", "Dashboard", page, auth="page"),
        Operation("POST", "/dashboard/oauth_clients", "Register an OAuth client from the form", "Dashboard", page,
                  auth="page", body=wire.SignInForm, body_type=FORM),
        Operation("GET", client + "/delete", "Confirm deleting an OAuth client", "Dashboard", page, auth="page"),
        Operation("POST", client + "/delete", "Delete an OAuth client", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("GET", "/dashboard/webhook_endpoints", "Webhook endpoints", "Dashboard", page, auth="page"),
        Operation("POST", "/dashboard/webhook_endpoints", "Create a webhook endpoint from the form", "Dashboard",
                  page, auth="page", body=wire.SignInForm, body_type=FORM),
        Operation("GET", endpoint + "/roll", "Confirm rolling an endpoint's secret", "Dashboard", page,
                  auth="page"),
        Operation("GET", endpoint + "/delete", "Confirm deleting a webhook endpoint", "Dashboard", page,
                  auth="page"),
        Operation("POST", endpoint + "/roll", "Roll an endpoint's signing secret", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("POST", endpoint + "/delete", "Delete a webhook endpoint", "Dashboard", page, auth="page",
                  body=wire.SignInForm, body_type=FORM),
        Operation("GET", "/dashboard/audit", "The audit trail", "Dashboard", page, auth="page"),
    ]  # fmt: skip


def _ops() -> list[Operation]:
    return [
        Operation("GET", "/healthz", "Liveness", "Operations", {200: wire.Health}, auth="public"),
        Operation("GET", "/readyz", "Readiness: store and cache reachable", "Operations", {200: wire.Readiness},
                  auth="public", errors=(503,)),
        Operation("GET", "/metrics", "Prometheus exposition (a bearer token when configured)", "Operations",
                  {200: "text/plain"}, auth="metrics"),
        Operation("GET", "/v1/audit_events", "The audit trail", "Operations", {200: wire.ListOf},
                  query=(LIMIT, AFTER, Query("action"), Query("key_id"), Query("org_id"), Query("since"),
                         Query("until"))),
        Operation("GET", "/openapi.json", "This document", "Operations", {200: JSON}, auth="public"),
    ]  # fmt: skip


def _preflights() -> list[Operation]:
    """CORS preflights of the endpoints a browser calls (sidecar/web/cors.py)."""
    return [
        Operation("OPTIONS", path, "CORS preflight: 204 for an allowed origin, method and headers", "Browsers",
                  {204: ""}, auth="public", errors=(403,))
        for path in BROWSER_ROUTES
    ]  # fmt: skip


def operations() -> tuple[Operation, ...]:
    """Every operation the app serves."""
    return (
        *_preflights(),
        *_auth(),
        *_keys(),
        *_tokens(),
        *_hasura(),
        *_webhook_endpoints(),
        *_oauth(),
        *_oauth_clients(),
        *_pages(),
        *_ops(),
    )
