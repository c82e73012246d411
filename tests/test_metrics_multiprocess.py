"""Several worker processes: prometheus-client's multiprocess mode merges their series on scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

WORKER = """
import sys
from pathlib import Path
from sidecar.metrics import Metrics
m = Metrics(version="1", multiprocess_dir=Path(sys.argv[1]), wall_clock=lambda: 1000.0)
for _ in range(int(sys.argv[2])):
    m.observe_request("/v1/hasura/webhook", "GET", 200, 0.0003)
    m.webhook_decision("allow", "api_key", "api_key")
m.signing_key_loaded("current", 400.0)
if len(sys.argv) > 3:
    sys.stdout.write(m.render().decode())
"""


def run_worker(directory: Path, requests: int, *, render: bool = False) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    args = [sys.executable, "-c", WORKER, str(directory), str(requests), *(["render"] if render else [])]
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout


def test_series_of_every_worker_are_merged(tmp_path: Path) -> None:
    run_worker(tmp_path, 3)
    run_worker(tmp_path, 4)
    text = run_worker(tmp_path, 0, render=True)  # the worker that answers the scrape
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    route = (("method", "GET"), ("route", "/v1/hasura/webhook"), ("status", "200"))
    assert samples[("sidecar_http_request_duration_seconds_count", route)] == 7
    decision = (("credential_type", "api_key"), ("reason", "api_key"), ("result", "allow"))
    assert samples[("sidecar_webhook_decisions_total", decision)] == 7
    assert samples[("sidecar_signing_key_age_seconds", (("slot", "current"),))] == 600.0
    assert any(name == "sidecar_build_info" for name, _ in samples)
