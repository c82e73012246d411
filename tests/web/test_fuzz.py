"""Schemathesis against a live ``sidecar serve`` on 127.0.0.1, from its own ``/openapi.json``.

Every generated request, authenticated as the bootstrap super-admin, must get no 5xx and a
response the document describes (status, content type, headers, body schema). ``make test`` runs
a few examples per operation; ``make fuzz`` sets ``FUZZ_MAX_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from sidecar.domain import keyformat
from sidecar.models import Environment, KeyType
from tests.redis_fixtures import HOST, free_port

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "4"))
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


class LiveServer:
    def __init__(self, url: str, admin_key: str, log: Path) -> None:
        self.url, self.admin_key, self.log = url, admin_key, log


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("fuzz")
    admin = keyformat.mint(keyformat.prefix_for(KeyType.SECRET, "super_admin", Environment.LIVE))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env.update(
        SIDECAR_DATA_DIR=str(data),
        SIDECAR_BOOTSTRAP_ADMIN_KEY=admin,
        SIDECAR_REQUEST_LOG__MODE="errors",
        SIDECAR_WEBHOOK__DELIVER="false",
    )
    log = data / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve", "--host", HOST, "--port", str(port)],
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
        url = f"http://{HOST}:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    if requests.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            yield LiveServer(url, admin, log)
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_no_5xx_and_every_response_as_documented(live_server: LiveServer) -> None:
    """One Hypothesis run per operation (schemathesis' own strategies); failures are gathered so one
    run reports every operation that broke, not just the first."""
    config = SchemathesisConfig.from_dict({"generation": {"mode": "positive", "max-examples": MAX_EXAMPLES}})
    api = schemathesis.openapi.from_url(live_server.url + "/openapi.json", config=config)
    headers = {"Authorization": f"Bearer {live_server.admin_key}"}
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            if case.path_parameters and "key_id" in case.path_parameters:
                case.path_parameters["key_id"] = "key_" + "0" * 24  # never the admin's own key
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation, reported together below
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations > 40
    assert not failures, "\n\n".join(failures) + "\n\nserver log:\n" + live_server.log.read_text()[-4000:]
