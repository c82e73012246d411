"""Typed application state: the services bundle the handlers use."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.domain.audit import AuditLog
from sidecar.domain.authn import Authenticator
from sidecar.domain.console import ConsoleSessions
from sidecar.domain.health import Readiness
from sidecar.domain.keys import KeyService
from sidecar.domain.oauth_authorize import AuthorizationEndpoint
from sidecar.domain.oauth_clients import OAuthClientService
from sidecar.domain.oauth_tokens import TokenEndpoint
from sidecar.domain.ratelimits import RateLimitService
from sidecar.domain.rbac import Policy
from sidecar.domain.revocations import TokenRevocations
from sidecar.domain.signing_keys import KeyRing
from sidecar.domain.tables import TableModel
from sidecar.domain.tokens import TokenService
from sidecar.domain.webhook_delivery import DeliveryService
from sidecar.domain.webhook_endpoints import WebhookEndpointService
from sidecar.metrics import Metrics


@dataclass(frozen=True, slots=True)
class OAuthServices:
    """The OAuth authorization server, and the two HTTP-edge choices it needs."""

    clients: OAuthClientService
    authorize: AuthorizationEndpoint
    tokens: TokenEndpoint
    cookie_secure: str


@dataclass(frozen=True, slots=True)
class Services:
    keys: KeyService
    policy: Policy
    authenticator: Authenticator
    webhook_endpoints: WebhookEndpointService
    deliveries: DeliveryService
    console: ConsoleSessions
    tables: TableModel
    tokens: TokenService
    signing_keys: KeyRing
    #: the URL Hasura and clients reach the sidecar at (discovery, jwks_uri)
    public_url: str
    ratelimits: RateLimitService | None = None
    oauth: OAuthServices | None = None
    revocations: TokenRevocations | None = None


SERVICES = web.AppKey("services", Services)
#: The app's metrics; components record through it (see sidecar.metrics), never a global.
METRICS = web.AppKey("metrics", Metrics)
#: ``/metrics`` bearer token (bytes); empty when the endpoint is open.
METRICS_TOKEN = web.AppKey("metrics_token", bytes)
#: Readiness checks; components ``app[READINESS].add(name, check)`` when their resource opens.
READINESS = web.AppKey("readiness", Readiness)
VERSION = web.AppKey("version", str)
#: The audit trail (set when the stores open); handlers record key changes and admin denials.
AUDIT = web.AppKey("audit", AuditLog)
