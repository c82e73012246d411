"""The ``sidecar`` command as an operator uses it: keys on the server's store, and ``serve``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner, Result
from joserfc.jwk import KeySet

from sidecar.app import create_app
from sidecar.cli import main, print_bootstrap_key
from sidecar.domain import keyformat
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from tests.conftest import ClientFactory, bearer
from tests.hasura_jwt_rules import verify_signature

KEY_RE = re.compile(r"\b(?:sk|rk|pk)_[a-z]+_[0-9A-Za-z]{38}\b")
DATA_COMMANDS = ("create", "list", "show", "revoke", "roll", "generate")


@dataclass
class Cli:
    """``sidecar …`` in-process, on one data dir (as SIDECAR_DATA_DIR)."""

    data_dir: Path
    env: dict[str, str]

    def __call__(self, *args: str, **env: str) -> Result:
        environ = {"SIDECAR_DATA_DIR": str(self.data_dir), **self.env, **env}
        return CliRunner().invoke(main, list(args), env=environ)

    def ok(self, *args: str, **env: str) -> Result:
        result = self(*args, **env)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "--json", **env).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(data_dir=tmp_path / "data", env={})


def assert_clean_failure(result: Result, *, exit_code: int | None = None, mentions: str = "") -> None:
    """Non-zero exit with a message for people: no traceback, and it says what was wrong."""
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert mentions in result.output


# --- help and JSON on every command -------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["keys"], *(["keys", c] for c in DATA_COMMANDS)], ids=lambda c: " ".join(c) or "main"
)
def test_every_command_has_help(cli: Cli, command: list[str]) -> None:
    result = cli.ok(*command, "--help")
    assert result.stdout.startswith("Usage: ")
    if command[-1:] and command[-1] in DATA_COMMANDS:
        assert "--json" in result.stdout


def test_help_works_even_with_a_bad_setting(cli: Cli) -> None:
    assert cli("keys", "create", "--help", SIDECAR_PORT="abc").exit_code == 0


# --- create: every type, every option --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "prefix", "role"),
    [
        ([], "sk_live_", "operator"),
        (["--role", "manager"], "sk_mgr_", "manager"),
        (["--role", "admin"], "sk_admin_", "admin"),
        (["--role", "super_admin"], "sk_super_", "super_admin"),
        (["--role", "viewer"], "rk_view_", "viewer"),
        (["--type", "restricted", "--permission", "orders:read"], "rk_live_", "restricted"),
        (["--type", "publishable"], "pk_live_", "anonymous"),
        (["--environment", "test"], "sk_test_", "operator"),
        (["--type", "restricted", "--environment", "test", "--permission", "returns:*"], "rk_test_", "restricted"),
        (["--type", "publishable", "--environment", "test"], "pk_test_", "anonymous"),
    ],
)
def test_create_every_type_of_the_contract(cli: Cli, args: list[str], prefix: str, role: str) -> None:
    created = cli.json("keys", "create", "--name", "k", *args)
    assert created["key"].startswith(prefix)
    assert keyformat.parse(created["key"]) is not None
    assert created["id"].startswith("key_")
    assert created["role"] == role
    assert created["display"] == f"{prefix}…{created['key'][-4:]}"
    assert "digest" not in created


def test_create_with_every_option(cli: Cli) -> None:
    created = cli.json(
        "keys",
        "create",
        "--type",
        "restricted",
        "--name",
        "warehouse sync",
        "--org",
        "org_acme",
        "--team",
        "team_ops",
        "--user",
        "user_42",
        "--permission",
        "orders:read",
        "--permission",
        "inventory:write",
        "--environment",
        "test",
        "--expires-at",
        "2031-06-30T18:00:00Z",
    )
    assert {k: created[k] for k in ("name", "type", "org_id", "team_id", "user_id", "environment", "expires_at")} == {
        "name": "warehouse sync",
        "type": "restricted",
        "org_id": "org_acme",
        "team_id": "team_ops",
        "user_id": "user_42",
        "environment": "test",
        "expires_at": "2031-06-30T18:00:00Z",
    }
    assert created["permissions"] == ["orders:read", "inventory:write"]


def test_publishable_key_with_allowed_origins(cli: Cli) -> None:
    created = cli.json(
        "keys",
        "create",
        "--type",
        "publishable",
        "--allowed-origin",
        "https://shop.example",
        "--allowed-origin",
        "https://m.shop.example",
    )
    assert created["allowed_origins"] == ["https://shop.example", "https://m.shop.example"]


def test_the_key_is_printed_once_and_never_again(cli: Cli) -> None:
    human = cli.ok("keys", "create", "--name", "once").stdout
    keys = KEY_RE.findall(human)
    assert len(keys) == 1
    assert "will not be shown again" in human
    key_id = re.search(r"\bkey_[0-9A-Za-z]{24}\b", human)
    assert key_id is not None
    for later in (
        cli.ok("keys", "show", key_id.group()).stdout,
        cli.ok("keys", "show", key_id.group(), "--json").stdout,
        cli.ok("keys", "list").stdout,
        cli.ok("keys", "list", "--json").stdout,
    ):
        assert keys[0] not in later
        assert KEY_RE.search(later) is None


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2031-01-31", "2031-01-31T00:00:00Z"),
        ("2031-01-31T12:00:00Z", "2031-01-31T12:00:00Z"),
        ("2031-01-31T12:00:00+02:00", "2031-01-31T10:00:00Z"),
        ("2031-01-31T12:00:00", "2031-01-31T12:00:00Z"),
        ("2031-01-31 12:00", "2031-01-31T12:00:00Z"),
        ("2031-01-31T12:00:00.250Z", "2031-01-31T12:00:00.250000Z"),
    ],
)
def test_expires_at_accepts_iso_8601_and_means_utc_without_an_offset(cli: Cli, given: str, stored: str) -> None:
    assert cli.json("keys", "create", "--expires-at", given)["expires_at"] == stored


@pytest.mark.parametrize("given", ["soon", "2031-13-01", "31/01/2031", "", "+30d"])
def test_expires_at_that_is_not_a_date_is_a_usage_error(cli: Cli, given: str) -> None:
    assert_clean_failure(cli("keys", "create", "--expires-at", given), exit_code=2, mentions="--expires-at")


def test_expires_at_in_the_past_is_refused(cli: Cli) -> None:
    assert_clean_failure(cli("keys", "create", "--expires-at", "2001-01-01"), exit_code=1, mentions="in the future")


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["keys", "create", "--role", "nobody"], "nobody"),
        (["keys", "create", "--type", "restricted"], "at least one permission"),
        (["keys", "create", "--permission", "orders:fly"], "orders:fly"),
        (["keys", "create", "--role", "viewer", "--permission", "orders:write"], "orders:write"),
        (["keys", "create", "--type", "publishable", "--role", "admin"], "anonymous"),
        (["keys", "create", "--type", "bogus"], "bogus"),
        (["keys", "create", "--environment", "staging"], "staging"),
        (["keys", "create", "--name", "x" * 201], "200"),
        (["keys", "show", "key_nope"], "key_nope"),
        (["keys", "revoke", "key_nope"], "key_nope"),
        (["keys", "roll", "key_nope"], "key_nope"),
        (["keys", "roll", "key_nope", "--expires-in", "-5"], "--expires-in"),
        (["keys", "list", "--limit", "0"], "--limit"),
        (["keys", "list", "--type", "bogus"], "bogus"),
        (["keys", "generate", "--role", "emperor"], "emperor"),
        (["keys", "frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_fails_cleanly(cli: Cli, args: list[str], mentions: str) -> None:
    assert_clean_failure(cli(*args), mentions=mentions)


def test_a_bad_setting_names_the_variable(cli: Cli) -> None:
    result = cli("keys", "list", SIDECAR_KEY_CACHE__TTL_S="-1")
    assert_clean_failure(result, exit_code=2, mentions="SIDECAR_KEY_CACHE__TTL_S")


def test_an_unsupported_database_url_is_named(cli: Cli) -> None:
    assert_clean_failure(cli("keys", "list", SIDECAR_DATABASE_URL="mysql://db/keys"), mentions="SIDECAR_DATABASE_URL")


def test_an_unreachable_database_is_one_line_not_a_traceback(cli: Cli, tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@/postgres?host={tmp_path}"  # a socket directory with no server
    result = cli("keys", "list", SIDECAR_DATABASE_URL=nowhere, SIDECAR_DATABASE_TIMEOUT_S="2")
    assert_clean_failure(result, exit_code=1, mentions="database is unavailable")


# --- list, show, revoke, roll, generate ----------------------------------------------------------


def test_list_pages_newest_first_and_filters(cli: Cli) -> None:
    made = [
        cli.json("keys", "create", "--name", f"k{i}", "--org", "org_a" if i % 2 else "org_b")["id"] for i in range(5)
    ]
    first = cli.json("keys", "list", "--limit", "2")
    assert first["has_more"] is True
    ids = [k["id"] for k in first["data"]]
    while True:
        page = cli.json("keys", "list", "--limit", "2", "--starting-after", ids[-1])
        ids += [k["id"] for k in page["data"]]
        if not page["has_more"]:
            break
    assert set(ids) == set(made)
    assert len(ids) == 5
    org_a = cli.json("keys", "list", "--org", "org_a")
    assert {k["name"] for k in org_a["data"]} == {"k1", "k3"}
    assert cli.json("keys", "list", "--type", "publishable")["data"] == []
    assert cli.json("keys", "list", "--starting-after", "key_gone") == {"data": [], "has_more": False}
    human = cli.ok("keys", "list", "--limit", "2").stdout
    assert "(more: --starting-after" in human


def test_list_on_an_empty_store(cli: Cli) -> None:
    assert cli.ok("keys", "list").stdout.strip() == "no keys"


def test_show_revoke_and_revoke_again(cli: Cli) -> None:
    key_id = cli.json("keys", "create", "--name", "doomed")["id"]
    shown = cli.json("keys", "show", key_id)
    assert (shown["name"], shown["status"], shown["revoked_at"]) == ("doomed", "active", None)
    revoked = cli.json("keys", "revoke", key_id)
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"] is not None
    assert cli.json("keys", "revoke", key_id)["revoked_at"] == revoked["revoked_at"]
    assert f"revoked {key_id}" in cli.ok("keys", "revoke", key_id).stdout


def test_roll_issues_a_successor_and_bounds_the_old_key(cli: Cli) -> None:
    old = cli.json("keys", "create", "--role", "manager", "--name", "rotating", "--team", "t1")
    rolled = cli.json("keys", "roll", old["id"], "--expires-in", "3600")
    assert rolled["key"].startswith("sk_mgr_")
    assert rolled["key"] != old["key"]
    assert (rolled["role"], rolled["name"], rolled["team_id"]) == ("manager", "rotating", "t1")
    assert rolled["previous"]["id"] == old["id"]
    assert rolled["previous"]["rolled_to"] == rolled["id"]
    assert rolled["previous"]["expires_at"] is not None
    again = cli("keys", "roll", old["id"])
    assert_clean_failure(again, exit_code=1, mentions="already rolled")
    human = cli.ok("keys", "roll", rolled["id"], "--expires-in", "60").stdout
    assert "will not be shown again" in human
    assert len(KEY_RE.findall(human)) == 1


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        ([], "sk_super_"),
        (["--role", "admin"], "sk_admin_"),
        (["--type", "publishable"], "pk_live_"),
        (["--type", "restricted", "--environment", "test"], "rk_test_"),
    ],
)
def test_generate_prints_a_valid_key_and_stores_nothing(cli: Cli, args: list[str], prefix: str) -> None:
    key = cli.ok("keys", "generate", *args).stdout.strip()
    assert key.startswith(prefix)
    assert keyformat.parse(key) is not None
    assert keyformat.parse(cli.json("keys", "generate", *args)["key"]) is not None
    assert not cli.data_dir.exists()


def test_cli_works_on_postgres(cli: Cli, pg_url: str) -> None:
    created = cli.json("keys", "create", "--name", "pg", SIDECAR_DATABASE_URL=pg_url)
    listed = cli.json("keys", "list", SIDECAR_DATABASE_URL=pg_url)
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    assert not cli.data_dir.joinpath("sidecar.db").exists()


# --- the CLI and the server share the store --------------------------------------------------------


async def test_a_cli_key_works_over_http_and_a_cli_revocation_reaches_a_new_app(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    cli = Cli(data_dir=settings.data_dir, env={})
    created = await asyncio.to_thread(cli.json, "keys", "create", "--role", "admin", "--org", "org_acme")
    first = await aiohttp_client(create_app(settings, clock=clock))
    resp = await first.get("/v1/auth/permissions", headers=bearer(created["key"]))
    assert resp.status == 200
    assert ((await resp.json())["role"], (await resp.json())["org_id"]) == ("admin", "org_acme")
    await first.close()

    await asyncio.to_thread(cli.json, "keys", "revoke", created["id"])
    second = await aiohttp_client(create_app(settings, clock=clock))
    resp = await second.get("/v1/auth/validate", headers=bearer(created["key"]))
    assert resp.status == 401
    assert (await resp.json())["error"] == "REVOKED_API_KEY"


async def test_a_key_the_server_made_is_visible_to_the_cli(
    client: TestClient[Any, Any], admin_key: str, settings: Settings
) -> None:
    resp = await client.post("/v1/api_keys", json={"name": "from http"}, headers=bearer(admin_key))
    key_id = (await resp.json())["id"]
    shown = await asyncio.to_thread(Cli(data_dir=settings.data_dir, env={}).json, "keys", "show", key_id)
    assert shown["name"] == "from http"


# --- bootstrap -----------------------------------------------------------------------------------


async def test_bootstrap_prints_once_then_never(
    aiohttp_client: ClientFactory, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await aiohttp_client(create_app(settings, on_bootstrap=print_bootstrap_key))
    printed = capsys.readouterr()
    keys = KEY_RE.findall(printed.err)
    assert len(keys) == 1
    assert keys[0].startswith("sk_super_")
    assert "will not be shown again" in printed.err
    assert keys[0] not in printed.out
    assert (await first.get("/v1/auth/validate", headers=bearer(keys[0]))).status == 200
    await first.close()

    second = await aiohttp_client(create_app(settings, on_bootstrap=print_bootstrap_key))
    assert KEY_RE.search(capsys.readouterr().err) is None
    assert (await second.get("/v1/auth/validate", headers=bearer(keys[0]))).status == 200


async def test_a_supplied_bootstrap_key_is_imported_silently(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    supplied = keyformat.mint(keyformat.prefix_for(*_super_admin()))
    client = await aiohttp_client(
        create_app(make_settings(bootstrap_admin_key=supplied), on_bootstrap=print_bootstrap_key)
    )
    printed = capsys.readouterr()
    assert KEY_RE.search(printed.err + printed.out) is None
    resp = await client.get("/v1/auth/permissions", headers=bearer(supplied))
    assert resp.status == 200
    assert (await resp.json())["role"] == "super_admin"


def _super_admin() -> tuple[Any, str, Any]:
    from sidecar.models import Environment, KeyType

    return KeyType.SECRET, "super_admin", Environment.LIVE


# --- `sidecar serve` as a process: the `make run` path -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sidecar_command() -> list[str]:
    script = Path(sys.executable).with_name("sidecar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sidecar"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    return {**env, **extra}


@dataclass
class Served:
    url: str
    stderr: list[str]


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., Any]:
    """Start ``sidecar serve`` on a free 127.0.0.1 port; the context yields once it listens."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run(**env: str) -> AsyncIterator[Served]:
        port = _free_port()
        proc = await asyncio.create_subprocess_exec(
            *_sidecar_command(),
            "serve",
            "--port",
            str(port),
            env=_clean_env(SIDECAR_DATA_DIR=str(tmp_path / "data"), **env),
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(60):  # a deadline for a slow machine, not an assertion
                while "sidecar listening on" not in "".join(lines):
                    line = await proc.stderr.readline()
                    assert line, f"sidecar serve exited: {''.join(lines)}"
                    lines.append(line.decode())
            yield Served(url=f"http://127.0.0.1:{port}", stderr=lines)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    await proc.wait()
        assert proc.returncode == 0, "".join(lines)

    return run


async def test_serve_prints_the_bootstrap_key_and_serves_the_contract(serve: Callable[..., Any]) -> None:
    async with serve() as served, aiohttp.ClientSession(served.url) as http:
        stderr = "".join(served.stderr)
        keys = KEY_RE.findall(stderr)
        assert len(keys) == 1
        assert "will not be shown again" in stderr
        admin = bearer(keys[0])

        resp = await http.get("/v1/auth/validate", headers=admin)
        assert resp.status == 200
        head = await http.head("/v1/auth/validate", headers=admin)
        assert head.status == 200
        assert await head.read() == b""
        wrong = await http.get("/v1/auth/validate", headers=bearer(keys[0][:-1] + ("A" if keys[0][-1] != "A" else "B")))
        assert wrong.status == 401
        assert (await wrong.json())["error"] == "INVALID_API_KEY"

        created = await http.post(
            "/v1/api_keys", json={"type": "restricted", "permissions": ["orders:read"]}, headers=admin
        )
        assert created.status == 201
        made = await created.json()
        perms = await (await http.get("/v1/auth/permissions", headers=bearer(made["key"]))).json()
        assert perms["scopes"] == ["orders:read"]
        bad = await http.post("/v1/api_keys", data=b"{not json", headers=admin)
        assert bad.status == 400
        assert (await bad.json())["error"] == "INVALID_REQUEST"


async def _discovery_and_issuer(served: Served) -> tuple[dict[str, Any], str]:
    """The discovery document, and the ``iss`` of a fresh token checked by joserfc against the JWKS."""
    admin = bearer(KEY_RE.findall("".join(served.stderr))[0])
    async with aiohttp.ClientSession(served.url) as http:
        discovery = await (await http.get("/.well-known/openid-configuration")).json()
        jwks = await (await http.get("/.well-known/jwks.json")).json()
        token = (await (await http.post("/v1/auth/token", headers=admin)).json())["access_token"]
    _, claims = verify_signature(token, KeySet.import_key_set(jwks), "RS256")
    return discovery, claims["iss"]


async def test_serve_port_is_the_port_discovery_and_tokens_name(serve: Callable[..., Any]) -> None:
    async with serve() as served:
        discovery, issuer = await _discovery_and_issuer(served)
    assert served.url.rsplit(":", 1)[1] != "8080"
    assert discovery["issuer"] == issuer == served.url
    assert discovery["jwks_uri"] == served.url + "/.well-known/jwks.json"
    assert discovery["session_token_endpoint"] == served.url + "/v1/auth/token"


async def test_serve_port_leaves_a_configured_public_url_alone(serve: Callable[..., Any]) -> None:
    async with serve(SIDECAR_PUBLIC_URL="https://auth.example.com") as served:
        discovery, issuer = await _discovery_and_issuer(served)
    assert discovery["issuer"] == issuer == "https://auth.example.com"
    assert discovery["jwks_uri"] == "https://auth.example.com/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SIDECAR_PORT": "abc"}, "SIDECAR_PORT"),
        ({"SIDECAR_BOOTSTRAP_ADMIN_KEY": "not-a-key"}, "SIDECAR_BOOTSTRAP_ADMIN_KEY"),
    ],
)
async def test_serve_with_a_bad_setting_exits_2_naming_it(tmp_path: Path, env: dict[str, str], named: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_sidecar_command(),
        "serve",
        "--port",
        str(_free_port()),
        env=_clean_env(SIDECAR_DATA_DIR=str(tmp_path / "data"), **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 2
    assert named in err.decode()
    assert "Traceback" not in err.decode() + out.decode()
    assert "not-a-key" not in err.decode()
