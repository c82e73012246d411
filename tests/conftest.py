"""Shared fixtures: settings in a temp dir, a frozen clock, the app behind a real HTTP client."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from sidecar.app import create_app
from sidecar.domain.keys import IssuedKey
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings
from sidecar.web.server import JsonErrorRunner

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class SidecarTestServer(TestServer):
    """``TestServer`` on the runner ``sidecar serve`` uses (``sidecar/web/server.py``): the fast
    lane in front of aiohttp, so every test's webhook, JWKS and token calls go the way production's do."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        assert self.app is not None
        return JsonErrorRunner(self.app, **kwargs)


@pytest.fixture
def aiohttp_client(aiohttp_client: ClientFactory) -> ClientFactory:
    """pytest-aiohttp's ``aiohttp_client``, serving an app with ``SidecarTestServer``."""

    async def make(app_or_server: Any, *, server_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if isinstance(app_or_server, web.Application):
            app_or_server = SidecarTestServer(app_or_server, **(server_kwargs or {}))
        return await aiohttp_client(app_or_server, **kwargs)

    return make


@pytest.fixture
async def aiohttp_server() -> AsyncIterator[ServerFactory]:
    """pytest-aiohttp's ``aiohttp_server``, serving with ``SidecarTestServer``."""
    servers: list[TestServer] = []

    async def make(app: web.Application, *, host: str = "127.0.0.1", port: int | None = None, **kwargs: Any) -> Any:
        server = SidecarTestServer(app, host=host, port=port)
        await server.start_server(**kwargs)
        servers.append(server)
        return server

    yield make
    while servers:
        await servers.pop().close()


@pytest.fixture(autouse=True)
def _no_sidecar_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they build, never the developer's SIDECAR_* variables."""
    for name in list(os.environ):
        if name.startswith("SIDECAR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return Settings(data_dir=tmp_path / "data", **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@dataclass
class Bootstrap:
    issued: list[IssuedKey] = field(default_factory=list)

    def __call__(self, issued: IssuedKey) -> None:
        self.issued.append(issued)

    @property
    def key(self) -> str:
        return self.issued[0].key


@pytest.fixture
def bootstrap() -> Bootstrap:
    return Bootstrap()


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, bootstrap: Bootstrap
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings, clock=clock, on_bootstrap=bootstrap))


@pytest.fixture
def admin_key(client: TestClient[Any, Any], bootstrap: Bootstrap) -> str:
    """The bootstrap super-admin key of the app under test."""
    return bootstrap.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


from tests.ports.pgproxy import PgRelay  # noqa: E402
from tests.redis_fixtures import own_redis, redis_server_url, redis_url  # noqa: E402, F401  (real Redis fixtures)

# --- PostgreSQL: one real server per session, a fresh schema per test -------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """``DATABASE_URL`` if set (the developer's own server), else a pgserver started here.

    pgserver listens on a unix socket in its temp dir only (no TCP port at all). Running as root
    it runs the server as a system user ``pgserver``, which cannot enter pytest's private temp
    dirs, hence a fresh directory directly under the system temp dir.
    """
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="sidecar-pg-"), cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def with_search_path(url: str, schema: str) -> str:
    """``url`` with asyncpg's ``search_path`` server setting, so unqualified tables land in ``schema``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
async def pg_url(pg_server_url: str) -> AsyncIterator[str]:
    """A URL whose tables live in a schema of their own, dropped after the test."""
    import asyncpg

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    schema = f"test_{secrets.token_hex(6)}"
    await admin(f"CREATE SCHEMA {schema}")
    yield with_search_path(pg_server_url, schema)
    await admin(f"DROP SCHEMA {schema} CASCADE")


# --- screenshots and other files the browser tests leave for review ----------------------------

_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    session.config.stash[_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name the artifacts (screenshots) this run wrote, so a reviewer can open them."""
    from tests.browser import ARTIFACTS

    started = config.stash.get(_STARTED, 0.0)
    written = sorted(p for p in ARTIFACTS.glob("*") if p.is_file() and p.stat().st_mtime >= started)
    if written:
        terminalreporter.section("artifacts for review (git-ignored)")
        for path in written:
            terminalreporter.write_line(str(path))


@pytest.fixture
async def relay(pg_server_url: str) -> AsyncIterator[PgRelay]:
    """A cuttable relay in front of the session's PostgreSQL (tests/ports/pgproxy.py)."""
    relay = PgRelay(pg_server_url)
    await relay.start()
    yield relay
    await relay.cut()
