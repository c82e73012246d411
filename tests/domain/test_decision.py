"""The webhook's decision pipeline, on a real SQLite key store, the in-process cache and a frozen clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from multidict import CIMultiDict

from sidecar.app import build_key_service, build_rate_limits, open_stores
from sidecar.domain import keyformat
from sidecar.domain.authn import Authenticator
from sidecar.domain.decision import (
    Anonymous,
    CredentialAuthenticator,
    Credentials,
    CredentialSources,
    Decider,
    FoldedHeaders,
    PresentedCredential,
)
from sidecar.domain.keys import KeyService, NewKey
from sidecar.domain.operations import OperationPolicy, OperationReader
from sidecar.domain.origins import BrowserOrigins
from sidecar.domain.rbac import Policy
from sidecar.domain.repeat_decisions import RepeatDecisions
from sidecar.errors import ExpiredApiKey, InvalidApiKey, RevokedApiKey, TokenExpired, Unauthorized, Unavailable
from sidecar.models import Environment, KeyType
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings, load_role_model
from tests.hasura_rules import HasuraView, hasura_reads
from tests.session_tokens import HmacSessionTokens

SOURCES = CredentialSources(header="X-Api-Key", cookie="sidecar_key")


def creds(**headers: str) -> Credentials:
    return Credentials.from_headers(FoldedHeaders({k.replace("_", "-"): v for k, v in headers.items()}), SOURCES)


def from_pairs(pairs: list[tuple[str, str]], sources: CredentialSources = SOURCES) -> Credentials:
    """As aiohttp hands GET mode's headers over: a case-insensitive multi-dict."""
    return Credentials.from_headers(CIMultiDict(pairs), sources)


# --- Credentials, parsed from headers --------------------------------------------------------


def test_kind_names_what_was_presented_by_its_shape_alone() -> None:
    key = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "operator", Environment.LIVE))
    assert creds().kind == "anonymous"
    assert creds(Authorization=f"Bearer {key}").kind == "api_key"
    assert creds(Authorization="Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig").kind == "session_jwt"
    assert creds(Authorization="Bearer nonsense").kind == "unknown"
    assert creds(Authorization="Basic dTpw").kind == "malformed"
    assert creds(X_Api_Key="with space").kind == "malformed"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_in_any_case(name: str, scheme: str) -> None:
    parsed = from_pairs([(name, f"{scheme} sk_x")])
    assert parsed.credential == "sk_x"
    assert not parsed.malformed


@pytest.mark.parametrize(
    "value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "Bearer a b", "sk_live_abc", "Token sk_live_abc"]
)
def test_a_presented_authorization_that_is_not_bearer_is_malformed(value: str) -> None:
    parsed = creds(Authorization=value)
    assert parsed.credential is None
    assert parsed.malformed
    assert parsed.presented


def test_blank_authorization_counts_as_absent() -> None:
    assert not creds(Authorization="  ").presented


def test_two_different_authorization_headers_are_ambiguous() -> None:
    assert from_pairs([("Authorization", "Bearer a"), ("authorization", "Bearer b")]).malformed
    assert FoldedHeaders({"Authorization": "Bearer a", "AUTHORIZATION": "Bearer b"}).getall("authorization", []) == [
        "Bearer a",
        "Bearer b",
    ]
    assert from_pairs([("X-Hasura-Role", "a"), ("X-Hasura-Role", "b"), ("Authorization", "Bearer k")]).malformed
    assert from_pairs([("Authorization", "Bearer k"), ("Authorization", "Bearer k")]).credential == "k"


def test_custom_header_and_cookie_carry_credentials() -> None:
    assert creds(x_api_key="sk_1").credential == "sk_1"
    assert creds(Cookie="theme=dark; sidecar_key=sk_2; other=1").credential == "sk_2"
    assert creds(Cookie='sidecar_key="sk_3"').credential == "sk_3"
    split = from_pairs([("cookie", "a=1"), ("Cookie", "sidecar_key=sk_4")])
    assert split.credential == "sk_4"


def test_authorization_wins_then_custom_header_then_cookie() -> None:
    assert creds(Authorization="Bearer A", x_api_key="B", Cookie="sidecar_key=C").credential == "A"
    assert creds(x_api_key="B", Cookie="sidecar_key=C").credential == "B"


def test_an_empty_credential_cookie_is_malformed_and_unrelated_cookies_are_nothing() -> None:
    assert creds(Cookie="sidecar_key=").malformed
    assert not creds(Cookie="session=abc").presented
    assert not from_pairs([("X-Api-Key", "sk_1")], CredentialSources()).presented


def test_requested_role_is_read_in_any_case_and_blank_means_default() -> None:
    assert creds(x_hasura_role="viewer").requested_role == "viewer"
    assert from_pairs([("X-HASURA-ROLE", "admin")]).requested_role == "admin"
    assert creds(x_hasura_role=" ").requested_role is None


# --- the pipeline ----------------------------------------------------------------------------


@dataclass
class World:
    clock: FrozenClock
    keys: KeyService
    tokens: HmacSessionTokens
    make: Callable[..., Decider]

    async def key(self, **spec: Any) -> str:
        return (await self.keys.create(NewKey(**spec), grantor=None)).key


@pytest.fixture(params=["fresh", "repeats"])
async def world(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], clock: FrozenClock
) -> AsyncIterator[World]:
    """Every decision test runs twice: deciding each call afresh, and reusing repeat decisions."""
    settings = make_settings()
    policy = Policy(load_role_model(None))
    tokens = HmacSessionTokens(clock)
    async with open_stores(settings.store_url()) as stores:
        keys = build_key_service(settings, stores.keys, clock, policy)

        def make(*, anonymous: bool = True, verifier: bool = True, max_age: int = 60) -> Decider:
            steps: list[CredentialAuthenticator] = [
                PresentedCredential(Authenticator(keys, tokens if verifier else None))
            ]
            if anonymous:
                steps.append(Anonymous("anonymous", policy.role_scopes("anonymous")))
            repeats = RepeatDecisions(keys, max_entries=100) if request.param == "repeats" else None
            return Decider(steps, clock, operations=None, max_cache_age_s=max_age, repeats=repeats)

        yield World(clock, keys, tokens, make)


async def session(decider: Decider, parsed: Credentials) -> HasuraView:
    return hasura_reads(200, (await decider.decide(parsed)).body)


async def test_api_key_gets_its_default_role_and_its_attributes(world: World) -> None:
    key = await world.key(role="manager", org_id="org_acme", team_id="team_1", user_id="u_1")
    view = await session(world.make(), creds(Authorization=f"Bearer {key}"))
    assert view.role == "manager"
    assert view.session["x-hasura-org-id"] == "org_acme"
    assert view.session["x-hasura-team-id"] == "team_1"
    assert view.session["x-hasura-user-id"] == "u_1"
    assert view.session["x-hasura-key-id"].startswith("key_")
    assert view.max_age == 60


async def test_requested_role_is_granted_only_if_held(world: World) -> None:
    key = await world.key(role="manager")
    decider = world.make()
    assert (await session(decider, creds(Authorization=f"Bearer {key}", x_hasura_role="anonymous"))).role == "anonymous"
    # admin is wider; viewer reads every row of the org, not only the team's
    for role in ("admin", "viewer", "operator"):
        with pytest.raises(Unauthorized) as denied:
            await decider.decide(creds(Authorization=f"Bearer {key}", x_hasura_role=role))
        assert denied.value.reason == "role_not_allowed"


async def test_bad_keys_are_refused_and_never_become_anonymous(world: World) -> None:
    decider = world.make(anonymous=True)
    key = await world.key()
    mistyped = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(InvalidApiKey):
        await decider.decide(creds(Authorization=f"Bearer {mistyped}"))
    with pytest.raises(Unauthorized):
        await decider.decide(creds(Authorization="Basic Zm9vOmJhcg=="))
    with pytest.raises(Unauthorized):
        await decider.decide(creds(Authorization="Bearer not-a-key-or-token"))
    revoked = await world.keys.create(NewKey(), grantor=None)
    await world.keys.revoke(revoked.record.id, viewer=None)
    with pytest.raises(RevokedApiKey):
        await decider.decide(creds(Authorization=f"Bearer {revoked.key}"))
    expiring = await world.key(expires_at=world.clock.now() + timedelta(seconds=10))
    world.clock.advance(11)
    with pytest.raises(ExpiredApiKey):
        await decider.decide(creds(x_api_key=expiring))


async def test_cache_age_never_outlives_the_key(world: World) -> None:
    key = await world.key(expires_at=world.clock.now() + timedelta(seconds=25))
    assert (await session(world.make(max_age=60), creds(Authorization=f"Bearer {key}"))).max_age == 25


async def test_no_credentials_is_anonymous_or_refused(world: World) -> None:
    view = await session(world.make(), creds(Accept="*/*"))
    assert view.role == "anonymous"
    assert "x-hasura-user-id" not in view.session
    with pytest.raises(Unauthorized) as denied:
        await world.make(anonymous=False).decide(creds())
    assert denied.value.reason == "no_credentials"


async def test_publishable_key_is_anonymous_with_its_org(world: World) -> None:
    key = await world.key(type=KeyType.PUBLISHABLE, org_id="org_shop")
    view = await session(world.make(), creds(Cookie=f"sidecar_key={key}"))
    assert view.role == "anonymous"
    assert view.session["x-hasura-org-id"] == "org_shop"
    with pytest.raises(Unauthorized):
        await world.make().decide(creds(Cookie=f"sidecar_key={key}", x_hasura_role="operator"))


async def test_session_jwt_path(world: World) -> None:
    token = world.tokens.issue(role="operator", allowed=["operator", "viewer"], ttl_s=40)
    decider = world.make()
    view = await session(decider, creds(Authorization=f"Bearer {token}", x_hasura_role="viewer"))
    assert view.role == "viewer"
    assert view.session["x-hasura-user-id"] == "user_42"
    assert view.max_age == 40
    with pytest.raises(Unauthorized):
        await decider.decide(creds(Authorization=f"Bearer {token}", x_hasura_role="admin"))
    with pytest.raises(Unauthorized):
        await decider.decide(creds(Authorization=f"Bearer {token[:-2]}xx"))
    world.clock.advance(41)
    with pytest.raises(TokenExpired):
        await decider.decide(creds(Authorization=f"Bearer {token}"))


async def test_token_shaped_credential_without_a_verifier_is_refused(world: World) -> None:
    token = world.tokens.issue(role="operator", allowed=["operator"])
    with pytest.raises(Unauthorized):
        await world.make(verifier=False).decide(creds(Authorization=f"Bearer {token}"))


async def test_outcomes_are_counted_by_result_and_reason(world: World) -> None:
    decider = world.make()
    await decider.decide(creds())
    with pytest.raises(Unauthorized):
        await decider.decide(creds(Authorization="Basic x"))
    assert decider.outcomes == {("allow", "anonymous"): 1, ("deny", "credential_malformed"): 1}


async def test_store_down_is_unavailable_unless_the_key_is_cached(
    make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    settings = make_settings()
    policy = Policy(load_role_model(None))
    async with open_stores(settings.store_url()) as stores:
        keys = build_key_service(settings, stores.keys, clock, policy)
        cached = (await keys.create(NewKey(), grantor=None)).key
        uncached = (await keys.create(NewKey(), grantor=None)).key
        decider = Decider([PresentedCredential(Authenticator(keys))], clock, operations=None, max_cache_age_s=60)
        await decider.decide(creds(Authorization=f"Bearer {cached}"))
    # the store is closed now: the cached key still answers, the other cannot be decided
    body = (await decider.decide(creds(Authorization=f"Bearer {cached}"))).body
    assert json.loads(body)["X-Hasura-Role"] == "operator"
    with pytest.raises(Unavailable):
        await decider.decide(creds(Authorization=f"Bearer {uncached}"))
    assert decider.outcomes["error", "store_unavailable"] == 1


class CountingStore:
    """The real SQLite store, with a tally of the calls that reach it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if callable(attr):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)

            return counted
        return attr


async def test_a_repeated_key_costs_no_store_call_and_nothing_is_written(
    make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    settings = make_settings()
    policy = Policy(load_role_model(None))
    async with open_stores(settings.store_url()) as stores:
        store = CountingStore(stores.keys)
        keys = build_key_service(settings, store, clock, policy)
        key = (await keys.create(NewKey(), grantor=None)).key
        unknown = keyformat.mint(keyformat.PREFIXES[0])  # well formed, never stored
        decider = Decider([PresentedCredential(Authenticator(keys))], clock, operations=None, max_cache_age_s=60)
        store.calls.clear()
        for _ in range(50):
            await decider.decide(creds(Authorization=f"Bearer {key}"))
            with pytest.raises(Unauthorized):
                await decider.decide(creds(Authorization=f"Bearer {unknown}"))
        assert store.calls == ["get_key_by_digest", "get_key_by_digest"]  # the first lookup of each, only


# --- Repeat decisions: reused only while the key's record is the one cached --------------------


@dataclass
class Repeats:
    clock: FrozenClock
    keys: KeyService
    store: Any
    decider: Decider


@pytest.fixture
async def repeats(make_settings: Callable[..., Settings], clock: FrozenClock) -> AsyncIterator[Repeats]:
    settings = make_settings(rate_limit={"enabled": True, "default": {"requests": 1, "per_s": 60, "burst": 3}})
    policy = Policy(load_role_model(None))
    async with open_stores(settings.store_url()) as stores:
        keys = build_key_service(settings, stores.keys, clock, policy)
        decider = Decider(
            [PresentedCredential(Authenticator(keys), BrowserOrigins(()))],
            clock,
            operations=OperationPolicy(OperationReader()),
            max_cache_age_s=60,
            limits=build_rate_limits(settings, None, clock),
            repeats=RepeatDecisions(keys, max_entries=100),
        )
        yield Repeats(clock, keys, stores.keys, decider)


async def test_a_revoke_through_this_process_ends_a_repeat_at_once(repeats: Repeats) -> None:
    issued = await repeats.keys.create(NewKey(), grantor=None)
    for _ in range(2):
        await repeats.decider.decide(creds(Authorization=f"Bearer {issued.key}"))
    await repeats.keys.revoke(issued.record.id, viewer=None)
    with pytest.raises(RevokedApiKey):
        await repeats.decider.decide(creds(Authorization=f"Bearer {issued.key}"))


async def test_a_change_no_one_announced_ends_a_repeat_when_the_cache_lets_go_of_the_key(repeats: Repeats) -> None:
    """Another replica revoked the key and its broadcast was lost: the cache TTL bounds the repeat too."""
    issued = await repeats.keys.create(NewKey(), grantor=None)
    presented = creds(Authorization=f"Bearer {issued.key}")
    await repeats.decider.decide(presented)
    await repeats.store.revoke_key(issued.record.id, repeats.clock.now())
    repeats.clock.advance(29)  # within the key cache's 30 s: the same answer as without repeats
    await repeats.decider.decide(presented)
    repeats.clock.advance(2)
    with pytest.raises(RevokedApiKey):
        await repeats.decider.decide(presented)


async def test_another_replicas_invalidation_ends_a_repeat(repeats: Repeats) -> None:
    issued = await repeats.keys.create(NewKey(), grantor=None)
    presented = creds(Authorization=f"Bearer {issued.key}")
    await repeats.decider.decide(presented)
    await repeats.store.revoke_key(issued.record.id, repeats.clock.now())
    repeats.keys.forget(keyformat.digest(issued.key))
    with pytest.raises(RevokedApiKey):
        await repeats.decider.decide(presented)


async def test_a_repeat_is_per_requested_role_and_origin(repeats: Repeats) -> None:
    key = (await repeats.keys.create(NewKey(role="manager"), grantor=None)).key
    await repeats.decider.decide(creds(Authorization=f"Bearer {key}"))
    with pytest.raises(Unauthorized) as denied:
        await repeats.decider.decide(creds(Authorization=f"Bearer {key}", x_hasura_role="admin"))
    assert denied.value.reason == "role_not_allowed"
    with pytest.raises(Unauthorized) as leaked:
        await repeats.decider.decide(creds(Authorization=f"Bearer {key}", Origin="https://shop.example"))
    assert leaked.value.reason == "secret_key_from_browser"


async def test_every_repeat_counts_against_the_rate_limit_and_as_a_use_of_the_key(repeats: Repeats) -> None:
    issued = await repeats.keys.create(NewKey(), grantor=None)
    presented = creds(Authorization=f"Bearer {issued.key}")
    for _ in range(3):  # the burst
        await repeats.decider.decide(presented)
        repeats.clock.advance(0.1)
    with pytest.raises(Unauthorized) as limited:
        await repeats.decider.decide(presented)
    assert limited.value.reason == "rate_limited"
    assert await repeats.keys.flush_last_used() == 1
    stored = await repeats.store.get_key(issued.record.id)
    assert stored is not None
    assert stored.last_used_at == repeats.clock.now()  # the last call, refused or not


async def test_an_expiring_keys_cache_age_keeps_shrinking(repeats: Repeats) -> None:
    key = (await repeats.keys.create(NewKey(expires_at=repeats.clock.now() + timedelta(seconds=50)), grantor=None)).key
    assert (await session(repeats.decider, creds(Authorization=f"Bearer {key}"))).max_age == 50
    repeats.clock.advance(20)
    assert (await session(repeats.decider, creds(Authorization=f"Bearer {key}"))).max_age == 30


async def test_a_repeat_still_checks_the_operation_of_each_call(repeats: Repeats) -> None:
    key = (await repeats.keys.create(NewKey(role="viewer"), grantor=None)).key  # reads only
    presented = creds(Authorization=f"Bearer {key}")
    await repeats.decider.decide(presented)
    await repeats.decider.decide(presented, {"query": "query { orders { id } }"})
    with pytest.raises(Unauthorized) as refused:
        await repeats.decider.decide(presented, {"query": "mutation { delete_orders { affected_rows } }"})
    assert refused.value.reason == "mutation_not_allowed"
