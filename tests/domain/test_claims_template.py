"""Claims templates: the bytes of ``json.dumps``, and a token service that remembers templates
issues exactly the claims of one that has seen nothing."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from sidecar.domain import jwk
from sidecar.domain.claims_template import ClaimsTemplate
from sidecar.domain.rbac import Policy
from sidecar.domain.signing_keys import KeyRing, RingTiming
from sidecar.domain.tokens import TokenConfig, TokenRequest, TokenService
from sidecar.models import CredentialType, Environment, KeyType, Principal
from sidecar.ports.clock import FrozenClock
from sidecar.settings import load_role_model

NAMESPACE = "https://hasura.io/jwt/claims"


def compact(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


@pytest.mark.parametrize(
    "payload",
    [
        {"sub": "u", "iat": 0, "exp": 0, "iss": "i", "jti": "", "aud": "hasura"},
        {"iat": 0, "exp": 0, "jti": ""},
        {
            "sub": 'quote " backslash \\ newline \n nul \x00 é ✓',
            "permissions": ["orders:read", "a,b", "{x}"],
            "iat": 0,
            "exp": 0,
            "iss": "https://sidecar.example",
            "jti": "",
            NAMESPACE: {"x-hasura-allowed-roles": ["a", "b"], "x-hasura-permissions": '{"a","b"}'},
            "nested": json.dumps({"stringified": True}),
            "none": None,
            "number": 1.5,
        },
    ],
)
def test_encoded_gives_the_bytes_json_dumps_gives(payload: dict[str, Any]) -> None:
    template = ClaimsTemplate(payload)
    for iat, exp, jti in ((1_767_225_595, 1_767_229_200, "tok_abc-_9"), (0, -1, 'odd "jti"')):
        expected = compact({**payload, "iat": iat, "exp": exp, "jti": jti})
        assert decoded(template.encoded(iat=iat, exp=exp, jti=jti)) == expected


def decoded(segment: bytes) -> str:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)).decode("ascii")


@pytest.mark.parametrize(
    "payload",
    [
        {"iat": 0, "exp": 0, "jti": ""},
        {"a": "", "iat": 0, "exp": 0, "jti": ""},
        {"ab": "", "iat": 0, "exp": 0, "jti": "", "z": 1},
        {"abc": "é", "iat": 0, "exp": 0, "jti": "", "zz": [1, 2], NAMESPACE: {"x-hasura-default-role": "admin"}},
    ],
)
def test_encoded_is_the_base64url_of_the_json_whatever_the_lengths(payload: dict[str, Any]) -> None:
    """Head and tail of every length modulo 3, and values whose lengths change between calls."""
    template = ClaimsTemplate(payload)
    values = [
        (1_767_225_595, 1_767_229_200, "tok_abcdefghijklmnopqrstuvwx"),
        (1_767_225_596, 1_767_229_201, "tok_ABCDEFGHIJKLMNOPQRSTUVWX"),  # the same layout again
        (5, 12_345_678_901, "t"),
        (0, -1, 'odd "jti" é'),
        (1_767_225_597, 1_767_229_202, "tok_abcdefghijklmnopqrstuvwx"),  # back to the first
    ]
    for extra in ("", "a", "ab", "abc"):  # every alignment of the values within 3-byte groups
        for iat, exp, jti in values:
            claims = {**payload, "iat": iat, "exp": exp, "jti": extra + jti}
            expected = jwk.b64url(compact(claims).encode()).encode()
            assert template.encoded(iat=iat, exp=exp, jti=extra + jti) == expected


def test_the_varying_claims_must_be_there_in_their_order() -> None:
    for payload in ({"iat": 0, "exp": 0}, {"exp": 0, "iat": 0, "jti": ""}, {"jti": "", "iat": 0, "exp": 0}):
        with pytest.raises(ValueError, match="iat, exp, jti"):
            ClaimsTemplate(payload)


def payload_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return payload


def claims(token: str) -> dict[str, Any]:
    return {k: v for k, v in payload_of(token).items() if k not in ("iat", "exp", "jti")}


@pytest.mark.parametrize("claims_format", ["json", "stringified_json"])
async def test_a_service_that_remembers_templates_issues_what_a_fresh_one_would(
    clock: FrozenClock, claims_format: Any
) -> None:
    """Every input a token's claims are built from, changed one at a time, changes the claims."""
    policy = Policy(load_role_model(None))
    ring = KeyRing(clock, RingTiming(3600, 60, 300, 30.0), algorithm="HS256", fixed=[jwk.hmac_secret(b"s" * 32)])
    await ring.start()
    config = TokenConfig(
        issuer="https://sidecar.example",
        audience="hasura",
        ttl_s=3600,
        claims_namespace=NAMESPACE,
        claims_format=claims_format,
        iat_backdate_s=5,
        clock_skew_s=60,
        accepted_algorithms=frozenset({"HS256"}),
    )
    base = Principal(
        credential_type=CredentialType.API_KEY,
        subject="user_42",
        org_id="org_acme",
        role="admin",
        allowed_roles=policy.acts_as("admin"),
        scopes=policy.role_scopes("admin"),
        environment=Environment.LIVE,
        user_id="user_42",
        key_id="key_1",
        key_type=KeyType.SECRET,
    )
    variants = [
        (base, TokenRequest()),
        (replace(base, subject="user_43"), TokenRequest()),
        (replace(base, org_id="org_other"), TokenRequest()),
        (replace(base, org_id=None), TokenRequest()),
        (replace(base, team_id="team_7"), TokenRequest()),
        (replace(base, user_id=None), TokenRequest()),
        (replace(base, key_id="key_2"), TokenRequest()),
        (replace(base, key_type=KeyType.RESTRICTED), TokenRequest()),
        (replace(base, environment=Environment.TEST), TokenRequest()),
        (replace(base, role="manager"), TokenRequest()),  # the same scopes, another role
        (replace(base, allowed_roles=("admin", "viewer")), TokenRequest()),
        (base, TokenRequest(role="viewer")),
        (base, TokenRequest(role="manager")),
        (base, TokenRequest(permissions=("orders:read",))),
        (base, TokenRequest(ttl_s=60)),
    ]
    remembering = TokenService(ring, clock, policy, config)
    issued = []
    for principal, request in variants * 2:  # the second round from templates
        token = remembering.exchange(principal, request).token
        fresh = TokenService(ring, clock, policy, config).exchange(principal, request).token
        assert claims(token) == claims(fresh)
        issued.append(compact(claims(token)))
    assert len(set(issued)) == len(variants) - 1  # all differ but the ttl one (only exp differs)
    token = remembering.exchange(base, TokenRequest())
    times = payload_of(token.token)
    assert times["jti"] == token.token_id
    assert times["iat"] == int(clock.now().timestamp()) - 5
    assert times["exp"] == int(clock.now().timestamp()) + 3600
