"""Merchants signed in with an external identity provider (Clerk, Auth0, …) on the consent page.

The provider's token is verified against its JWKS (fetched by a port), with the algorithm
allowlist, issuer and audience from configuration, and times judged by our clock. Its claims
are mapped to a principal: ``sub`` is the user, an org claim the org, and a role claim, through
a configured table, one of our roles (a role the table does not name is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from sidecar.domain.rbac import Policy
from sidecar.errors import InvalidToken, TokenExpired
from sidecar.models import CredentialType, Environment, Principal
from sidecar.ports import Clock

ALGORITHMS = ("RS256", "ES256", "EdDSA")


class JwksSource(Protocol):
    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The provider's key ``kid`` (refetching the JWKS, rate-limited, when it is unknown)."""
        ...


@dataclass(frozen=True, slots=True)
class IdpConfig:
    issuer: str
    audience: str | None
    org_claim: str
    role_claim: str
    roles: Mapping[str, str] = field(default_factory=dict)
    clock_skew_s: int = 60


class ExternalIdentity:
    def __init__(self, jwks: JwksSource, clock: Clock, policy: Policy, config: IdpConfig) -> None:
        self._jwks = jwks
        self._clock = clock
        self._policy = policy
        self._config = config

    async def verify(self, token: str) -> Principal:
        """The merchant an ID token names; ``InvalidToken``/``TokenExpired`` otherwise."""
        claims = await self._decode(token)
        self._check_times(claims)
        sub, org = claims.get("sub"), claims.get(self._config.org_claim)
        if not isinstance(sub, str) or not sub or not isinstance(org, str) or not org:
            raise InvalidToken("the identity token names no user or no organisation", reason="idp_claims_missing")
        role = self._config.roles.get(str(claims.get(self._config.role_claim, "")))
        if role is None or not self._policy.has_role(role):
            raise InvalidToken("the identity token's role has no access here", reason="idp_role_unmapped")
        return Principal(
            credential_type=CredentialType.SESSION_JWT,
            subject=sub,
            org_id=org,
            role=role,
            allowed_roles=self._policy.acts_as(role),
            scopes=self._policy.role_scopes(role),
            environment=Environment.LIVE,
            user_id=sub,
            extra={"idp": self._config.issuer},
        )

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the identity token is malformed", reason="idp_token_malformed") from None
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or alg not in ALGORITHMS:
            raise InvalidToken("the identity token's key or algorithm is not accepted", reason="idp_alg_refused")
        key = await self._jwks.key(kid)
        if key is None or key.algorithm_name != alg:
            raise InvalidToken("the identity token was not signed by the provider", reason="idp_unknown_kid")
        config = self._config
        try:
            return dict(
                jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=config.audience,
                    issuer=config.issuer,
                    options={
                        "require": ["exp", "iat", "sub", "iss"],
                        "verify_aud": config.audience is not None,
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            )
        except jwt.PyJWTError:
            raise InvalidToken("the identity token is not valid", reason="idp_token_invalid") from None

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock.now().timestamp()
        skew = self._config.clock_skew_s
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat, nbf)):
            raise InvalidToken("the identity token's times are not numbers", reason="idp_token_invalid")
        if now >= exp + skew:
            raise TokenExpired("the identity token has expired", reason="idp_token_expired")
        if iat > now + skew or nbf > now + skew:
            raise InvalidToken("the identity token is not valid yet", reason="idp_token_not_yet_valid")
