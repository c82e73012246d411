"""Forged and tampered tokens: every one is a 401, never a 500 and never accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from sidecar.domain import jwk
from sidecar.errors import InvalidToken
from sidecar.ports.clock import FrozenClock
from sidecar.web.state import SERVICES
from tests.conftest import bearer

Client = TestClient[Any, Any]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())


async def genuine(client: Client, admin_key: str) -> str:
    resp = await client.post("/v1/auth/token", headers=bearer(admin_key))
    return str((await resp.json())["access_token"])


def signer(client: Client) -> jwk.KeyMaterial:
    return client.server.app[SERVICES].signing_keys.view().signer


async def denials(client: Client) -> Counter[str]:
    """``sidecar_webhook_decisions_total{result="deny"}`` by reason, scraped from ``/metrics``."""
    resp = await client.get("/metrics")
    return Counter(
        {
            s.labels["reason"]: int(s.value)
            for family in text_string_to_metric_families(await resp.text())
            for s in family.samples
            if s.name == "sidecar_webhook_decisions_total" and s.labels["result"] == "deny"
        }
    )


async def assert_rejected(client: Client, token: str, code: str = "INVALID_TOKEN") -> None:
    """A 401 from the API, and from the Hasura webhook with its refusal counted under a reason."""
    resp = await client.get("/v1/auth/validate", headers=bearer(token))
    assert resp.status == 401, await resp.text()
    body = await resp.json()
    assert body["error"] == code
    assert token not in body["message"]
    before = await denials(client)
    assert (await client.get("/v1/hasura/webhook", headers=bearer(token))).status == 401
    counted = await denials(client) - before
    assert sum(counted.values()) == 1
    assert all(reason.startswith(("token_", "credential_")) for reason in counted), counted


async def test_alg_none_is_rejected(client: Client, admin_key: str) -> None:
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    kid = signer(client).kid
    await assert_rejected(client, segments({"alg": "none", "typ": "JWT", "kid": kid}, claims) + ".")


async def test_hs256_signed_with_the_rsa_public_key_is_rejected(client: Client, admin_key: str) -> None:
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    key = signer(client)
    assert not isinstance(key.verify_key, bytes)
    public_pem = key.verify_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = segments({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims)
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    await assert_rejected(client, signing_input + "." + b64(mac))


async def test_unknown_kid_and_foreign_key_are_rejected(client: Client, admin_key: str) -> None:
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    attacker = jwk.asymmetric(jwk.generate("RS256"))
    forged = jwt.encode(claims, attacker.sign_key, algorithm="RS256", headers={"kid": attacker.kid})
    await assert_rejected(client, forged)
    # our kid, but the attacker's key: the signature fails
    same_kid = jwt.encode(claims, attacker.sign_key, algorithm="RS256", headers={"kid": signer(client).kid})
    await assert_rejected(client, same_kid)
    no_kid = jwt.encode(claims, attacker.sign_key, algorithm="RS256")
    await assert_rejected(client, no_kid)


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "/dev/null", "https://attacker.example/jwks.json", "' OR '1'='1", "x" * 2000, ""],
)
async def test_a_kid_that_points_elsewhere_finds_nothing(client: Client, admin_key: str, kid: str) -> None:
    """The kid is only ever a key in the ring's dictionary: never a path, a URL or a query."""
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    attacker = jwk.asymmetric(jwk.generate("RS256"))
    await assert_rejected(client, jwt.encode(claims, attacker.sign_key, algorithm="RS256", headers={"kid": kid}))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "HS256", "RS512", "PS256", "rs256", ["RS256"], {"RS256": 1}, None])
async def test_an_algorithm_outside_the_allowlist_is_refused_before_its_kid_is_looked_up(
    client: Client, admin_key: str, alg: Any
) -> None:
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    tokens = client.server.app[SERVICES].tokens
    assert tokens.config.accepted_algorithms == {"RS256"}  # the default: the signing algorithm only
    for kid in (signer(client).kid, "no-such-kid"):
        token = segments({"alg": alg, "typ": "JWT", "kid": kid}, claims) + "." + b64(b"\0" * 64)
        with pytest.raises(InvalidToken) as refused:
            tokens.verify_now(token)
        assert refused.value.reason == "token_alg_not_allowed"  # not token_unknown_kid / token_alg_mismatch
        await assert_rejected(client, token)


@pytest.mark.parametrize("header", ["jku", "x5u"])
async def test_jku_and_x5u_headers_are_ignored(client: Client, admin_key: str, header: str) -> None:
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    attacker = jwk.asymmetric(jwk.generate("RS256"))
    headers = {"kid": signer(client).kid, header: "https://attacker.example/jwks.json"}
    await assert_rejected(client, jwt.encode(claims, attacker.sign_key, algorithm="RS256", headers=headers))


async def test_tampered_payload_is_rejected(client: Client, admin_key: str) -> None:
    token = await genuine(client, admin_key)
    head, _, sig = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["role"] = "super_admin"
    claims["permissions"] = ["admin", "system:signing_keys"]
    await assert_rejected(client, head + "." + b64(json.dumps(claims).encode()) + "." + sig)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"aud": "someone-else"}, "INVALID_TOKEN"),
        ({"iss": "https://evil.example"}, "INVALID_TOKEN"),
        ({"exp": None}, "INVALID_TOKEN"),
        ({"sub": None}, "INVALID_TOKEN"),
        ({"iat": None}, "INVALID_TOKEN"),
        ({"aud": None}, "INVALID_TOKEN"),
        ({"exp": "tomorrow"}, "INVALID_TOKEN"),
        ({"permissions": "admin"}, "INVALID_TOKEN"),
        ({"https://hasura.io/jwt/claims": None}, "INVALID_TOKEN"),
        ({"iat": 2_000_000_000}, "INVALID_TOKEN"),
        ({"exp": 1_000_000_000}, "TOKEN_EXPIRED"),
    ],
)
async def test_claim_checks(client: Client, admin_key: str, change: dict[str, Any], code: str) -> None:
    """Tokens signed with the real key but with a bad claim (as a key thief or a bug would mint)."""
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    for name, value in change.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    key = signer(client)
    token = jwt.encode(claims, key.sign_key, algorithm=key.algorithm, headers={"kid": key.kid})  # type: ignore[arg-type]
    await assert_rejected(client, token, code)


def sign_raw(client: Client, header_json: str, payload_json: str) -> str:
    """A token signed with the real key over exactly these JSON texts (duplicates and all)."""
    key = signer(client)
    signing_input = b64(header_json.encode()) + "." + b64(payload_json.encode())
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key.sign_key))  # type: ignore[arg-type]
    return signing_input + "." + b64(signature)


@pytest.mark.parametrize("where", ["top-level claim", "hasura claims", "header"])
async def test_a_member_named_twice_is_refused_even_when_signed(client: Client, admin_key: str, where: str) -> None:
    """Parsers disagree on which of two same-named members wins (RFC 7519 §4): refuse the token,
    here one our own key signed, with a later ``role`` that would make its holder super_admin."""
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    header = json.dumps({"alg": signer(client).algorithm, "typ": "JWT", "kid": signer(client).kid})
    payload = json.dumps(claims)
    if where == "top-level claim":
        payload = payload[:-1] + ', "role": "super_admin"}'
    elif where == "hasura claims":
        namespace = json.dumps(claims["https://hasura.io/jwt/claims"])
        doubled = namespace[:-1] + ', "x-hasura-default-role": "org_admin"}'
        payload = payload.replace(namespace, doubled)
        assert doubled in payload
    else:
        header = header[:-1] + ', "alg": "none"}'
    token = sign_raw(client, header, payload)
    await assert_rejected(client, token)
    resp = await client.get("/v1/auth/validate", headers=bearer(token))
    assert "twice" in (await resp.json())["message"]


async def test_the_same_token_without_the_duplicate_verifies(client: Client, admin_key: str) -> None:
    """The control for the test above: ``sign_raw`` itself makes tokens that verify."""
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    header = json.dumps({"alg": signer(client).algorithm, "typ": "JWT", "kid": signer(client).kid})
    resp = await client.get("/v1/auth/validate", headers=bearer(sign_raw(client, header, json.dumps(claims))))
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("garbage", ["a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", "....", "x" * 5000 + ".a.b"])
async def test_garbage_is_401_not_500(client: Client, garbage: str) -> None:
    await assert_rejected(client, garbage)


async def test_expiry_is_decided_by_the_injected_clock(client: Client, admin_key: str, clock: FrozenClock) -> None:
    token = await genuine(client, admin_key)
    clock.advance(3599)
    assert (await client.get("/v1/auth/validate", headers=bearer(token))).status == 200
    clock.advance(1)
    await assert_rejected(client, token, "TOKEN_EXPIRED")


async def test_a_token_signed_by_a_retired_key_is_refused(client: Client, admin_key: str, clock: FrozenClock) -> None:
    """A signing key that leaked after it retired mints nothing: fresh claims, its own kid, refused."""
    old = signer(client)
    assert (await client.post("/v1/signing_keys/rotate", headers=bearer(admin_key))).status == 201
    clock.advance(390 + 3600 + 60)  # it stops signing, then every token it signed has expired: retired
    claims = jwt.decode(await genuine(client, admin_key), options={"verify_signature": False})
    assert signer(client).kid != old.kid
    forged = jwt.encode(claims, old.sign_key, algorithm=old.algorithm, headers={"kid": old.kid})  # type: ignore[arg-type]
    await assert_rejected(client, forged)
