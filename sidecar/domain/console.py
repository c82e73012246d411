"""Sessions of the operator's dashboard: a sealed cookie naming the signed-in key, with a CSRF token.

Stateless (any replica can read it) yet revocable: every request re-reads the key, so revoking the
key that signed in ends its dashboard sessions at once.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sidecar.domain.keys import KeyService
from sidecar.domain.rbac import Policy
from sidecar.errors import ConfigError, Unauthorized
from sidecar.models import Principal
from sidecar.ports import Clock, SecretSealer

PURPOSE = "dashboard_session"
MANAGE_SCOPE = "admin"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    principal: Principal
    csrf_token: str


class ConsoleSessions:
    def __init__(self, keys: KeyService, policy: Policy, sealer: SecretSealer, clock: Clock, *, ttl_s: int) -> None:
        self._keys = keys
        self._policy = policy
        self._sealer = sealer
        self._clock = clock
        self._ttl = ttl_s

    @property
    def ttl_s(self) -> int:
        return self._ttl

    def start(self, principal: Principal) -> str:
        """The cookie value for a principal that just signed in (it must hold the admin scope)."""
        self._policy.require(principal, MANAGE_SCOPE)
        if principal.key_id is None:
            raise Unauthorized("sign in with an API key", reason="console_needs_key")
        expires = self._clock.now() + timedelta(seconds=self._ttl)
        payload = {"k": principal.key_id, "e": expires.timestamp(), "c": secrets.token_urlsafe(24)}
        return self._sealer.seal(json.dumps(payload).encode(), purpose=PURPOSE)

    async def resume(self, cookie: str | None) -> ConsoleSession:
        """The session a cookie carries; ``Unauthorized`` if absent, forged, expired or its key is gone."""
        if not cookie:
            raise Unauthorized("not signed in", reason="console_no_session")
        try:
            payload = json.loads(self._sealer.unseal(cookie, purpose=PURPOSE))
            key_id, expires, csrf = str(payload["k"]), float(payload["e"]), str(payload["c"])
        except (ConfigError, ValueError, KeyError, TypeError):
            raise Unauthorized("the dashboard session is not valid", reason="console_bad_session") from None
        if expires <= self._clock.now().timestamp():
            raise Unauthorized("the dashboard session has expired", reason="console_session_expired")
        principal = await self._keys.active_principal(key_id)
        self._policy.require(principal, MANAGE_SCOPE)
        return ConsoleSession(principal=principal, csrf_token=csrf)

    @staticmethod
    def check_csrf(session: ConsoleSession, presented: str | None) -> None:
        if not presented or not hmac.compare_digest(session.csrf_token.encode(), presented.encode()):
            raise Unauthorized("the form has expired; reload the page and try again", reason="csrf_mismatch")
