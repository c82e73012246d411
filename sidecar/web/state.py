"""Typed application state: the services bundle the handlers use."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.domain.authn import Authenticator
from sidecar.domain.console import ConsoleSessions
from sidecar.domain.keys import KeyService
from sidecar.domain.rbac import Policy
from sidecar.domain.tables import TableModel


@dataclass(frozen=True, slots=True)
class Services:
    keys: KeyService
    policy: Policy
    authenticator: Authenticator
    console: ConsoleSessions
    tables: TableModel


SERVICES = web.AppKey("services", Services)
