"""Verified session tokens remembered by ``TokenService``: real keys, a real ring, a frozen clock.

A hit is the very ``Principal`` object the first verify returned; a fresh verify builds a new one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jwt
import pytest

from sidecar.app import open_stores
from sidecar.domain import jwk
from sidecar.domain.rbac import Policy
from sidecar.domain.signing_keys import KeyRing, RingTiming
from sidecar.domain.tokens import TokenConfig, TokenRequest, TokenService
from sidecar.domain.verified_tokens import VerifiedTokens
from sidecar.errors import InvalidToken, TokenExpired, Unauthorized
from sidecar.models import CredentialType, Environment, KeyType, Principal
from sidecar.ports.clock import FrozenClock
from sidecar.ports.sealer import Sealer
from sidecar.settings import load_role_model

SKEW = 60
BACKDATE = 5
TIMING = RingTiming(max_token_ttl_s=3600, clock_skew_s=SKEW, jwks_max_age_s=300, reload_s=30.0)
CONFIG = TokenConfig(
    issuer="https://sidecar.example",
    audience="hasura",
    ttl_s=3600,
    claims_namespace="https://hasura.io/jwt/claims",
    claims_format="json",
    iat_backdate_s=BACKDATE,
    clock_skew_s=SKEW,
    accepted_algorithms=frozenset({"RS256"}),
)
Service = Callable[..., TokenService]


@pytest.fixture
def policy() -> Policy:
    return Policy(load_role_model(None))


@pytest.fixture
async def ring(clock: FrozenClock) -> KeyRing:
    ring = KeyRing(clock, TIMING, algorithm="RS256", fixed=[jwk.asymmetric(jwk.generate("RS256"))])
    await ring.start()
    return ring


@pytest.fixture
def service(ring: KeyRing, clock: FrozenClock, policy: Policy) -> Service:
    def make(max_entries: int = 100, *, on: KeyRing = ring) -> TokenService:
        return TokenService(on, clock, policy, CONFIG, verified=VerifiedTokens(max_entries))

    return make


def api_key(policy: Policy, key_id: str = "key_1") -> Principal:
    return Principal(
        credential_type=CredentialType.API_KEY,
        subject="user_42",
        org_id="org_acme",
        role="operator",
        allowed_roles=policy.acts_as("operator"),
        scopes=policy.role_scopes("operator"),
        environment=Environment.LIVE,
        user_id="user_42",
        key_id=key_id,
        key_type=KeyType.SECRET,
    )


def issue(tokens: TokenService, policy: Policy, *, ttl_s: int | None = None, key_id: str = "key_1") -> str:
    return tokens.exchange(api_key(policy, key_id), TokenRequest(ttl_s=ttl_s)).token


def cache_of(tokens: TokenService) -> VerifiedTokens:
    return tokens._verified  # how many entries there are is the point of these tests


def test_a_verified_token_is_remembered_and_then_not_decoded_again(service: Service, policy: Policy) -> None:
    tokens = service()
    token = issue(tokens, policy)
    first = tokens.verify_now(token)
    assert len(cache_of(tokens)) == 1
    assert tokens.verify_now(token) is first
    # the same answer as a service that remembers nothing
    assert service(0).verify_now(token) == first


def test_with_no_room_every_verify_is_fresh(service: Service, policy: Policy) -> None:
    tokens = service(0)
    token = issue(tokens, policy)
    first = tokens.verify_now(token)
    again = tokens.verify_now(token)
    assert again == first
    assert again is not first
    assert len(cache_of(tokens)) == 0


def test_a_remembered_token_is_refused_from_its_exp(service: Service, policy: Policy, clock: FrozenClock) -> None:
    tokens = service()
    token = issue(tokens, policy, ttl_s=60)
    first = tokens.verify_now(token)
    clock.advance(59)
    assert tokens.verify_now(token) is first
    clock.advance(1)
    with pytest.raises(TokenExpired):
        tokens.verify_now(token)
    assert len(cache_of(tokens)) == 0
    with pytest.raises(TokenExpired):  # and stays refused
        tokens.verify_now(token)


def test_a_remembered_token_is_held_to_iat_as_a_fresh_one_is(
    service: Service, policy: Policy, clock: FrozenClock
) -> None:
    """A clock stepped back (NTP) makes a remembered token not yet valid, exactly as a fresh verify says."""
    tokens = service()
    token = issue(tokens, policy)
    first = tokens.verify_now(token)
    clock.advance(-(SKEW + BACKDATE))  # iat (backdated) is now exactly now + skew: still accepted
    assert tokens.verify_now(token) is first
    clock.advance(-1)
    with pytest.raises(InvalidToken) as refused:
        tokens.verify_now(token)
    assert refused.value.reason == "token_not_yet_valid"
    with pytest.raises(InvalidToken) as fresh:
        service(0).verify_now(token)
    assert fresh.value.reason == "token_not_yet_valid"
    assert len(cache_of(tokens)) == 0


def test_tokens_that_fail_take_no_place(service: Service, policy: Policy, clock: FrozenClock, ring: KeyRing) -> None:
    tokens = service()
    genuine = issue(tokens, policy, ttl_s=60)
    head, payload, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    attacker = jwk.asymmetric(jwk.generate("RS256"))
    ours = ring.view().signer
    refused = [
        "",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "!!!!.e30.c2ln",
        f"{head}.{payload}.{signature[:-4]}AAAA",  # tampered signature
        f"{head}.{payload[:-4]}AAAA.{signature}",  # tampered payload
        jwt.encode(claims, attacker.sign_key, algorithm="RS256", headers={"kid": ours.kid}),  # type: ignore[arg-type]
        jwt.encode({**claims, "aud": "other"}, ours.sign_key, algorithm="RS256", headers={"kid": ours.kid}),  # type: ignore[arg-type]
    ]
    for token in refused:
        with pytest.raises(Unauthorized):
            tokens.verify_now(token)
    clock.advance(60)
    with pytest.raises(TokenExpired):  # genuine, but seen for the first time after its exp
        tokens.verify_now(genuine)
    assert len(cache_of(tokens)) == 0


def test_the_bound_holds_and_the_least_recently_used_token_goes_first(service: Service, policy: Policy) -> None:
    tokens = service(3)
    issued = [issue(tokens, policy) for _ in range(5)]
    seen = {token: tokens.verify_now(token) for token in issued[:3]}
    assert tokens.verify_now(issued[0]) is seen[issued[0]]  # now the most recently used
    for token in issued[3:]:
        seen[token] = tokens.verify_now(token)
    assert len(cache_of(tokens)) == 3
    assert tokens.verify_now(issued[0]) is seen[issued[0]]  # kept
    assert tokens.verify_now(issued[4]) is seen[issued[4]]
    assert tokens.verify_now(issued[1]) is not seen[issued[1]]  # gone: decoded again
    assert len(cache_of(tokens)) == 3


def test_random_tokens_leave_the_cache_as_it_was(service: Service, policy: Policy) -> None:
    tokens = service(5)
    token = issue(tokens, policy)
    first = tokens.verify_now(token)
    head = token.split(".")[0]
    for _ in range(2_000):
        with pytest.raises(Unauthorized):
            tokens.verify_now(f"{head}.{os.urandom(30).hex()}.{os.urandom(30).hex()}")
    assert len(cache_of(tokens)) == 1
    assert tokens.verify_now(token) is first


# --- the signing-key ring -------------------------------------------------------------------


@pytest.fixture
async def rotating_ring(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[KeyRing]:
    """Generated keys in SQLite whose superseded keys retire after 30 s, long before our tokens expire."""
    sealer = Sealer(os.urandom(32))
    async with open_stores(f"sqlite:///{tmp_path / 'keys.db'}", sealer=sealer) as stores:
        timing = RingTiming(max_token_ttl_s=30, clock_skew_s=0, jwks_max_age_s=0, reload_s=1.0)
        ring = KeyRing(clock, timing, algorithm="RS256", store=stores.signing_keys, sealer=sealer)
        await ring.start()
        yield ring


async def test_a_remembered_token_is_refused_once_its_key_retires(
    service: Service, policy: Policy, clock: FrozenClock, rotating_ring: KeyRing
) -> None:
    tokens = service(on=rotating_ring)
    token = issue(tokens, policy)
    first = tokens.verify_now(token)
    assert tokens.verify_now(token) is first
    await rotating_ring.rotate(immediate=True)  # a new view: what the old one proved is forgotten
    again = tokens.verify_now(token)  # the old key is still published (previous): decoded again, valid
    assert again == first
    assert again is not first
    assert tokens.verify_now(token) is again
    clock.advance(31)  # the old key retires; the token itself is valid for another ~hour
    with pytest.raises(InvalidToken) as refused:
        tokens.verify_now(token)
    assert refused.value.reason == "token_unknown_kid"
    assert len(cache_of(tokens)) == 0
    assert tokens.verify_now(issue(tokens, policy)).role == "operator"  # the new key's tokens do verify
