"""Typed application state: the services bundle the handlers use."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.domain.authn import Authenticator
from sidecar.domain.console import ConsoleSessions
from sidecar.domain.keys import KeyService
from sidecar.domain.ratelimits import RateLimitService
from sidecar.domain.rbac import Policy
from sidecar.domain.signing_keys import KeyRing
from sidecar.domain.tables import TableModel
from sidecar.domain.tokens import TokenService
from sidecar.domain.webhook_delivery import DeliveryService
from sidecar.domain.webhook_endpoints import WebhookEndpointService


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


SERVICES = web.AppKey("services", Services)
