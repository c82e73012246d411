"""``sidecar serve`` as real processes, for tests of several replicas on one store and one Redis."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import aiohttp

from sidecar.domain import keyformat
from sidecar.models import Environment, KeyType
from tests.redis_fixtures import HOST, free_port


def replica_env(*, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """What every replica of one deployment shares: store, Redis, master key, bootstrap admin key,
    and the public URL of the load balancer in front (the tokens' issuer: the replicas here listen
    on different ports, so each would otherwise name its own)."""
    admin = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "super_admin", Environment.LIVE))
    return {
        "SIDECAR_PUBLIC_URL": "http://sidecar.internal:8080",
        "SIDECAR_DATABASE_URL": database_url,
        "SIDECAR_REDIS_URL": redis_url,
        "SIDECAR_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "SIDECAR_BOOTSTRAP_ADMIN_KEY": admin,
        **extra,
    }


class Replica:
    def __init__(self, name: str, env: Mapping[str, str], data_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._env = {**os.environ, **env, "SIDECAR_DATA_DIR": str(data_dir)}
        self._log_path = data_dir / f"{name}.log"
        self._log: IO[bytes] | None = None
        self._process: asyncio.subprocess.Process | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    async def start(self, session: aiohttp.ClientSession, timeout_s: float = 30.0) -> None:
        self._log = self._log_path.open("wb")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", "serve", "--host", HOST, "--port", str(self.port),
            env=self._env, stdout=self._log, stderr=self._log,
        )  # fmt: skip
        async with asyncio.timeout(timeout_s):
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"replica {self.name} exited:\n{self.log()}")
                try:
                    async with session.get(f"{self.url}/v1/auth/validate") as resp:
                        if resp.status == 401:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._log is not None:
            self._log.close()
