"""Which rate limit applies to a caller, and the check itself (429 ``RATE_LIMITED`` when over).

Authenticated calls count against their key (or token subject); unauthenticated and failed calls
count against the client's IP, so guessing keys is throttled too. The limit of a key is, in order:
its own override, its role's, its type's, the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from sidecar.errors import RateLimited
from sidecar.models import KeyType, Principal
from sidecar.ports.ratelimit import Decision, Limit, RateLimiter


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    default: Limit
    unauthenticated: Limit
    by_type: Mapping[KeyType, Limit] = field(default_factory=dict)
    by_role: Mapping[str, Limit] = field(default_factory=dict)
    by_key: Mapping[str, Limit] = field(default_factory=dict)

    def for_principal(self, principal: Principal) -> Limit:
        if principal.key_id is not None and principal.key_id in self.by_key:
            return self.by_key[principal.key_id]
        if principal.role in self.by_role:
            return self.by_role[principal.role]
        if principal.key_type is not None and principal.key_type in self.by_type:
            return self.by_type[principal.key_type]
        return self.default


class RateLimitService:
    def __init__(self, limiter: RateLimiter, policy: RateLimitPolicy, *, trusted_hops: int = 0) -> None:
        self._limiter = limiter
        self._policy = policy
        #: proxies in front of us whose ``X-Forwarded-For`` entries name the client
        self.trusted_hops = trusted_hops

    async def check_principal(self, principal: Principal) -> Decision:
        """Count one call of ``principal``; ``RateLimited`` when over its limit."""
        bucket = "key:" + (principal.key_id or f"{principal.credential_type.value}:{principal.subject}")
        return self._raise_if_denied(await self._limiter.hit(bucket, self._policy.for_principal(principal)))

    async def check_client(self, ip: str) -> Decision:
        """Count one unauthenticated (or failed) call from ``ip``; ``RateLimited`` when over."""
        return self._raise_if_denied(await self._limiter.hit("ip:" + ip, self._policy.unauthenticated))

    @staticmethod
    def _raise_if_denied(decision: Decision) -> Decision:
        if decision.allowed:
            return decision
        raise RateLimited(
            f"too many requests: retry in {max(1, math.ceil(decision.retry_after_s))} s",
            retry_after=max(1, math.ceil(decision.retry_after_s)),
            limit=decision.limit,
            remaining=decision.remaining,
            reset=math.ceil(decision.reset_s),
        )
