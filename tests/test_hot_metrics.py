"""The request path's families are exposed byte for byte as prometheus-client's own would be."""

from __future__ import annotations

import re
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.hot_metrics import LocalCounter, LocalHistogram
from sidecar.metrics import LATENCY_BUCKETS

#: on a bound, between bounds, below the first and beyond the last
LATENCIES = (0.00005, 0.0001, 0.0003, 0.0003, 0.2, 2.5, 11.0)


def exposition(local: bool) -> str:
    registry = CollectorRegistry()
    counter = (LocalCounter if local else Counter)("sidecar_things", "Things.", ("result", "reason"), registry=registry)
    histogram = (LocalHistogram if local else Histogram)(
        "sidecar_wait_seconds", "Waits.", ("route", "status"), registry=registry, buckets=LATENCY_BUCKETS
    )
    for n in range(3):
        counter.labels(result="allow", reason="api_key").inc()
        counter.labels(result="deny", reason=f"r{n % 2}").inc()
    for seconds in LATENCIES:
        histogram.labels(route="/v1/hasura/webhook", status="200").observe(seconds)
    histogram.labels(route="/healthz", status="200").observe(0.001)
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 0.0", generate_latest(registry).decode())


@pytest.fixture
def no_created_series() -> Iterator[None]:
    prometheus_client.disable_created_metrics()
    try:
        yield
    finally:
        prometheus_client.enable_created_metrics()


def test_counters_and_histograms_read_as_prometheus_clients_own() -> None:
    ours = exposition(local=True)
    assert ours == exposition(local=False)
    families = {f.name: f for f in text_string_to_metric_families(ours)}
    buckets = {
        s.labels["le"]: s.value
        for s in families["sidecar_wait_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["route"] == "/v1/hasura/webhook"
    }
    assert buckets["0.0001"] == 2  # a latency on a bound counts in that bound's bucket
    assert buckets["0.0005"] == 4
    assert buckets["10.0"] == 6
    assert buckets["+Inf"] == 7


def test_without_created_series_as_well(no_created_series: None) -> None:
    ours = exposition(local=True)
    assert "_created" not in ours
    assert ours == exposition(local=False)


def test_labels_are_checked_by_name() -> None:
    counter = LocalCounter("sidecar_things", "Things.", ("result",), CollectorRegistry())
    with pytest.raises(ValueError, match="result"):
        counter.labels(outcome="allow")
