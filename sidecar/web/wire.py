"""Response shapes of the JSON API, as pydantic models: what ``/openapi.json`` publishes.

The handlers build their bodies with the ``*_json`` functions next to them; these models say what
those bodies are. Schemathesis checks every live response against them (``tests/web/test_fuzz.py``),
so a body and its model cannot part without a failing test.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """A body that may gain fields: clients must ignore what they do not know."""

    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every error of the API (CONTRACT.md): a stable code and a human sentence."""

    error: str = Field(description="INVALID_REQUEST, INVALID_API_KEY, NOT_FOUND, RATE_LIMITED, …")
    message: str


class OAuthError(BaseModel):
    """RFC 6749 §5.2: the OAuth endpoints' errors."""

    error: str = Field(description="invalid_request, invalid_client, invalid_grant, …")
    error_description: str | None = None


class Secrets(_Open):
    created_at: str | None
    expires_at: str | None


class ApiKey(_Open):
    id: str
    object: str = "api_key"
    name: str
    type: str
    role: str
    environment: str
    org_id: str
    team_id: str | None
    user_id: str | None
    permissions: list[str]
    allowed_origins: list[str]
    prefix: str
    last4: str
    display: str
    status: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    rolled_to: str | None


class CreatedApiKey(ApiKey):
    key: str = Field(description="the key itself: shown in this response only")


class RolledApiKey(CreatedApiKey):
    previous: ApiKey


class ApiKeyList(_Open):
    object: str = "list"
    url: str
    data: list[ApiKey]
    has_more: bool


class Caller(_Open):
    """The authenticated caller (``/v1/auth/validate``, ``/v1/auth/permissions``)."""

    credential_type: str
    role: str
    allowed_roles: list[str]
    scopes: list[str]
    org_id: str
    team_id: str | None
    user_id: str | None
    key_id: str | None
    key_type: str | None
    environment: str
    expires_at: str | None


class Validation(Caller):
    valid: bool


class Permissions(Caller):
    hasura_role: str
    matrix: dict[str, Any]
    all_orgs: bool


class SessionToken(_Open):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: str | None


class Revocation(_Open):
    revoked: bool
    jti: str | None
    until: str | None


class SigningKey(_Open):
    object: str = "signing_key"
    kid: str
    alg: str
    state: str
    source: str
    published: bool
    created_at: str | None
    activates_at: str | None
    superseded_at: str | None
    retires_at: str | None


class SigningKeyList(_Open):
    object: str = "list"
    data: list[SigningKey]


class Jwks(_Open):
    keys: list[dict[str, Any]]


class Discovery(_Open):
    issuer: str
    jwks_uri: str
    token_endpoint: str


class WebhookEndpoint(_Open):
    id: str
    object: str = "webhook_endpoint"
    url: str
    events: list[str]
    format: str
    enabled: bool
    description: str
    created_at: str | None
    secrets: list[Secrets]


class CreatedWebhookEndpoint(WebhookEndpoint):
    secret: str = Field(description="the signing secret: shown in this response only")


class WebhookEndpointList(_Open):
    object: str = "list"
    url: str
    data: list[WebhookEndpoint]
    has_more: bool


class ListOf(_Open):
    """A page of objects (``data``), with ``has_more`` for the next page."""

    object: str = "list"
    data: list[dict[str, Any]]
    has_more: bool | None = None


class AcceptedEvent(_Open):
    event_id: str
    endpoints: int
    queued: int


class OAuthClient(_Open):
    id: str
    object: str = "oauth_client"
    name: str
    type: str
    redirect_uris: list[str]
    scopes: list[str]
    org_id: str
    secret_display: str | None
    created_at: str | None


class CreatedOAuthClient(OAuthClient):
    client_secret: str | None = Field(None, description="confidential clients: shown in this response only")


class OAuthClientList(_Open):
    object: str = "list"
    data: list[OAuthClient]
    has_more: bool | None = None


class OAuthTokens(_Open):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class Introspection(_Open):
    """RFC 7662 §2.2: ``active`` alone for a token that is not (or not the client's)."""

    active: bool


class ServerMetadata(_Open):
    """RFC 8414."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str


class Health(_Open):
    status: str
    version: str


class Readiness(_Open):
    status: str = Field(description="ready, degraded or not_ready")
    checks: dict[str, dict[str, Any]]


class HasuraSession(BaseModel):
    """The session Hasura reads: ``X-Hasura-*`` variables, every value a string."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str]


class TokenForm(_Open):
    """``POST /oauth/token`` (RFC 6749 §4.1.3, §4.4.2, §6), form-encoded."""

    grant_type: str = Field(description="authorization_code, refresh_token or client_credentials")
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    refresh_token: str | None = None
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class TokenActionForm(_Open):
    """``POST /oauth/revoke`` (RFC 7009) and ``/oauth/introspect`` (RFC 7662), form-encoded."""

    token: str
    token_type_hint: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class SignInForm(_Open):
    """The pages' sign-in and consent forms (``csrf_token`` from the page)."""

    csrf_token: str | None = None
    api_key: str | None = None
