"""One JSON log line per request: its fields, and never a presented key."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.logs import JsonFormatter
from sidecar.settings import Settings
from tests.conftest import ClientFactory, bearer

Client = TestClient[Any, Any]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "sidecar.access"]


async def test_one_line_per_request_with_its_fields(
    client: Client, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.access")
    await client.get("/v1/auth/validate", headers={**bearer(admin_key), "X-Request-Id": "abc-1"})
    wrong = admin_key[:-1] + ("A" if admin_key[-1] != "A" else "B")
    await client.get("/v1/auth/validate", headers={**bearer(wrong), "X-Request-Id": "abc-2"})
    await client.get(f"/v1/api_keys/{admin_key}", headers=bearer(admin_key))

    lines = access_lines(caplog)
    assert len(lines) == 3
    ok, denied, not_found = lines
    assert ok["request_id"] == "abc-1"
    assert ok["method"] == "GET"
    assert ok["route"] == "/v1/auth/validate"
    assert ok["status"] == 200
    assert ok["level"] == "INFO"
    assert ok["key_id"].startswith("key_")
    assert isinstance(ok["latency_ms"], float)
    assert denied["request_id"] == "abc-2"
    assert denied["status"] == 401
    assert denied["reason"] == "api_key_malformed"
    assert "key_id" not in denied
    assert not_found["route"] == "/v1/api_keys/{key_id}"
    assert not_found["reason"] == "key_not_found"

    # aiohttp's own access log (test server only; `sidecar serve` turns it off) prints raw paths
    ours = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("sidecar")]
    everything = "\n".join(ours)
    assert admin_key not in everything
    assert wrong not in everything
    assert admin_key[8:] not in everything


async def test_no_log_work_when_the_level_filters_it_out(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sidecar.access")
    await client.get("/healthz")
    await client.get("/v1/auth/validate")
    assert access_lines(caplog) == []


@pytest.mark.parametrize(
    ("request_log", "expected"),
    [
        ({"mode": "off", "quiet_routes": []}, []),
        ({"mode": "errors", "quiet_routes": []}, [401]),
        ({"mode": "all", "quiet_routes": []}, [200, 401]),
        ({"mode": "all"}, [401]),  # /healthz is quiet by default
        ({"mode": "all", "quiet_routes": ["/v1/auth/validate"]}, [200]),
        ({"mode": "all", "quiet_routes": [], "sample_rate": 0.0}, [401]),
    ],
)
async def test_request_log_settings(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    request_log: dict[str, Any],
    expected: list[int],
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.access")
    client = await aiohttp_client(create_app(make_settings(request_log=request_log)))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/v1/auth/validate")).status == 401
    assert [line["status"] for line in access_lines(caplog)] == expected


def test_log_lines_carry_utc_timestamps_to_the_millisecond() -> None:
    formatter = JsonFormatter()

    def ts(created: float) -> str:
        record = logging.LogRecord("sidecar.access", logging.INFO, __file__, 0, "x", None, None)
        record.created = created
        return str(json.loads(formatter.format(record))["ts"])

    assert ts(1_700_000_000.0456) == "2023-11-14T22:13:20.045Z"
    assert ts(1_700_000_000.9999) == "2023-11-14T22:13:20.999Z"
    assert ts(1_700_000_001.0) == "2023-11-14T22:13:21.000Z"  # the next second, not a stale one
    assert ts(1_699_999_999.5) == "2023-11-14T22:13:19.500Z"
