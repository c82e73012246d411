"""Shared fixtures: settings in a temp dir, a frozen clock, the app behind a real HTTP client."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.domain.keys import IssuedKey
from sidecar.ports.clock import FrozenClock
from sidecar.settings import Settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


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


from tests.redis_fixtures import own_redis, redis_server_url, redis_url  # noqa: E402, F401  (real Redis fixtures)
