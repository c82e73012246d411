"""Typed application state: the services bundle the handlers use."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.domain.authn import Authenticator
from sidecar.domain.console import ConsoleSessions
from sidecar.domain.keys import KeyService
from sidecar.domain.oauth_authorize import AuthorizationEndpoint
from sidecar.domain.oauth_clients import OAuthClientService
from sidecar.domain.oauth_tokens import TokenEndpoint
from sidecar.domain.ratelimits import RateLimitService
from sidecar.domain.rbac import Policy
from sidecar.domain.tables import TableModel


@dataclass(frozen=True, slots=True)
class OAuthServices:
    """The OAuth authorization server, and the two HTTP-edge choices it needs."""

    clients: OAuthClientService
    authorize: AuthorizationEndpoint
    tokens: TokenEndpoint
    public_url: str | None
    cookie_secure: str


@dataclass(frozen=True, slots=True)
class Services:
    keys: KeyService
    policy: Policy
    authenticator: Authenticator
    console: ConsoleSessions
    tables: TableModel
    ratelimits: RateLimitService | None = None
    oauth: OAuthServices | None = None


SERVICES = web.AppKey("services", Services)
