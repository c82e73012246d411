"""``sidecar hasura config`` and ``sidecar signing-keys``, run as an operator would."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sidecar.app import create_app
from sidecar.cli import main
from sidecar.ports.clock import FrozenClock
from sidecar.settings import load_settings
from tests.conftest import Bootstrap, ClientFactory, bearer
from tests.hasura_jwt_rules import JwksCache, check_v2, check_v3

V2_SECRET_KEYS = {
    "type",
    "key",
    "jwk_url",
    "claims_namespace",
    "claims_namespace_path",
    "claims_format",
    "claims_map",
    "audience",
    "issuer",
    "allowed_skew",
    "header",
}
HS_SECRET = "an-hs256-secret-that-is-long-enough-for-hasura"


def run(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


def pointer_key(pointer: str) -> str:
    assert pointer.startswith("/")
    assert "/" not in pointer[1:]
    return pointer[1:].replace("~1", "/").replace("~0", "~")


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"SIDECAR_JWT__CLAIMS_NAMESPACE": "claims.jwt.hasura.io", "SIDECAR_JWT__CLAIMS_FORMAT": "stringified_json"},
        {"SIDECAR_JWT__ALGORITHM": "HS256", "SIDECAR_JWT__HS256_SECRET": HS_SECRET, "SIDECAR_JWT__AUDIENCE": ""},
    ],
)
async def test_printed_config_accepts_the_tokens_we_issue(
    aiohttp_client: ClientFactory,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: dict[str, str],
) -> None:
    env = {"SIDECAR_DATA_DIR": str(tmp_path / "data"), "SIDECAR_PUBLIC_URL": "https://auth.example.com/", **extra}
    printed = run(env, "hasura", "config", "--json")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boot = Bootstrap()
    client = await aiohttp_client(create_app(load_settings(), clock=clock, on_bootstrap=boot))
    token = (await (await client.post("/v1/auth/token", headers=bearer(boot.key))).json())["access_token"]

    secret = json.loads(printed["jwt_mode"]["v2"]["HASURA_GRAPHQL_JWT_SECRET"])  # §3.1: a JSON object
    assert set(secret) <= V2_SECRET_KEYS
    assert ("jwk_url" in secret) != ("key" in secret)
    assert secret["issuer"] == "https://auth.example.com"
    jwks = JwksCache(client)
    now = clock.now().timestamp()
    await jwks.refresh(now)
    hs = None
    if "key" in secret:
        assert secret["type"] == "HS256"
        assert len(secret["key"].encode()) >= 32  # §3.2
        hs = secret["key"].encode()
    else:
        assert secret["jwk_url"] == "https://auth.example.com/.well-known/jwks.json"
    algorithm = "HS256" if hs else "RS256"
    check_v2(
        token,
        jwks,
        now=now,
        algorithm=algorithm,
        hs256_secret=hs,
        namespace=secret["claims_namespace"],
        claims_format=secret["claims_format"],
        issuer=secret["issuer"],
        audience=secret.get("audience"),
    )

    v3 = printed["jwt_mode"]["v3"]
    assert v3["kind"] == "AuthConfig"
    jwt_mode = v3["definition"]["mode"]["jwt"]
    namespace = jwt_mode["claimsConfig"]["namespace"]
    assert jwt_mode["tokenLocation"] == {"type": "BearerAuthorization"}
    if hs:
        assert jwt_mode["key"] == {"fixed": {"algorithm": "HS256", "key": {"value": HS_SECRET}}}
        assert "audience" not in jwt_mode  # with aud in the token but none here, v3 would reject (§5.3)
    else:
        assert jwt_mode["key"] == {"jwkFromUrl": "https://auth.example.com/.well-known/jwks.json"}
    check_v3(
        token,
        jwks,
        now=now,
        algorithm=algorithm,
        hs256_secret=hs,
        namespace=pointer_key(namespace["location"]),
        claims_format={"Json": "json", "StringifiedJson": "stringified_json"}[namespace["claimsFormat"]],
        issuer=jwt_mode["issuer"],
        audience=(jwt_mode.get("audience") or [None])[0],
    )

    hook = printed["webhook_mode"]["v2"]
    assert hook["HASURA_GRAPHQL_AUTH_HOOK"] == "https://auth.example.com/v1/hasura/webhook"
    assert hook["HASURA_GRAPHQL_AUTH_HOOK_MODE"] in ("GET", "POST")


def test_human_hasura_config_is_pasteable(tmp_path: Path) -> None:
    out = run({"SIDECAR_DATA_DIR": str(tmp_path)}, "hasura", "config")
    line = next(x for x in out.splitlines() if x.startswith("HASURA_GRAPHQL_JWT_SECRET="))
    value = line.split("=", 1)[1]
    assert value.startswith("'")
    assert value.endswith("'")
    assert json.loads(value[1:-1])["jwk_url"] == "http://127.0.0.1:8080/.well-known/jwks.json"
    assert "kind: AuthConfig" in out
    assert "HASURA_GRAPHQL_AUTH_HOOK=http://127.0.0.1:8080/v1/hasura/webhook" in out


def test_human_hasura_config_survives_a_secret_with_shell_quotes(tmp_path: Path) -> None:
    secret = "it's a $HOME `secret` with \\ and \" quotes, long enough"
    env = {"SIDECAR_DATA_DIR": str(tmp_path), "SIDECAR_JWT__ALGORITHM": "HS256", "SIDECAR_JWT__HS256_SECRET": secret}
    out = run(env, "hasura", "config")
    lines = [x for x in out.splitlines() if x.startswith("HASURA_GRAPHQL")]
    assert len(lines) == 3
    for line in lines:
        quoted = line.partition("=")[2]
        assert len(shlex.split(quoted)) == 1, line  # one shell word, whatever the value holds
    script = "\n".join([*lines, 'printf %s "$HASURA_GRAPHQL_JWT_SECRET"'])
    pasted = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env={})
    assert json.loads(pasted.stdout)["key"] == secret  # what the shell hands Hasura is the exact secret


def test_signing_keys_rotate_and_list(tmp_path: Path) -> None:
    env = {"SIDECAR_DATA_DIR": str(tmp_path / "data")}
    assert run(env, "signing-keys", "list", "--json") == []
    first = run(env, "signing-keys", "rotate", "--json")
    assert first["state"] == "current"  # nothing to break yet: the first key signs at once
    second = run(env, "signing-keys", "rotate", "--json")
    assert second["state"] == "next"
    listed = run(env, "signing-keys", "list", "--json")
    assert [(k["kid"], k["state"]) for k in listed] == [(second["kid"], "next"), (first["kid"], "current")]
    assert "next" in run(env, "signing-keys", "list")
    refused = CliRunner().invoke(main, ["signing-keys", "rotate"], env=env)
    assert refused.exit_code == 1
    assert "already in progress" in refused.output
    events = run(env, "audit", "list", "--action", "signing_key.rotated", "--json")["data"]
    assert [(e["actor"], e["target"]["id"]) for e in events] == [
        ({"id": "cli", "type": "cli"}, second["kid"]),
        ({"id": "cli", "type": "cli"}, first["kid"]),
    ]  # the refused third rotation recorded nothing
    assert events[0]["detail"] == {"alg": "RS256", "activates_at": events[0]["detail"]["activates_at"],
                                   "immediate": "false"}  # fmt: skip
    urgent = run(env, "signing-keys", "rotate", "--immediately", "--json")
    latest = run(env, "audit", "list", "--action", "signing_key.rotated", "--limit", "1", "--json")["data"][0]
    assert latest["target"]["id"] == urgent["kid"]
    assert latest["detail"]["immediate"] == "true"
