"""The Metrics API other components call, on its own registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sidecar.metrics import Metrics, safe_label


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_recording_methods_produce_their_series() -> None:
    metrics = Metrics(version="9.9.9")
    metrics.webhook_decision("allow", "api_key", "api_key")
    metrics.webhook_decision("allow", "api_key", "api_key")
    metrics.webhook_decision("deny", "api_key_revoked", "api_key")
    metrics.token_issued("RS256")
    metrics.token_issued("none")
    metrics.cache("redis", hit=False)
    metrics.store_call("get_key_by_digest", 0.0004)
    metrics.redis_call("get", 0.0002)
    metrics.rate_limited("api_key")
    got = samples(metrics)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("sidecar_webhook_decisions_total", result="allow", reason="api_key", credential_type="api_key") == 2
    assert value("sidecar_webhook_decisions_total", result="deny", reason="api_key_revoked", credential_type="api_key")
    assert value("sidecar_tokens_issued_total", algorithm="RS256") == 1
    assert value("sidecar_tokens_issued_total", algorithm="other") == 1
    assert value("sidecar_key_cache_lookups_total", tier="redis", result="miss") == 1
    assert value("sidecar_store_call_duration_seconds_bucket", operation="get_key_by_digest", le="0.0005") == 1
    assert value("sidecar_redis_call_duration_seconds_count", operation="get") == 1
    assert value("sidecar_rate_limit_rejections_total", scope="api_key") == 1


def test_a_secret_passed_as_a_label_is_recorded_as_other() -> None:
    leaked = "sk_live_" + "Ab3" * 12
    metrics = Metrics(version="1")
    metrics.webhook_decision("deny", leaked, "eyJhbGciOiJIUzI1NiJ9.e30.sig")
    text = metrics.render().decode()
    assert leaked not in text
    assert "eyJ" not in text
    assert 'reason="other"' in text
    assert safe_label("api_key_revoked") == "api_key_revoked"
    assert safe_label("x" * 49) == "other"


def test_signing_key_age_is_computed_at_scrape_time() -> None:
    now = [1_000.0]
    metrics = Metrics(version="1", wall_clock=lambda: now[0])
    metrics.signing_key_loaded("current", 400.0)
    metrics.signing_key_loaded("next", 990.0)
    assert samples(metrics)[("sidecar_signing_key_age_seconds", (("slot", "current"),))] == 600.0
    now[0] = 1_060.0
    got = samples(metrics)
    assert got[("sidecar_signing_key_age_seconds", (("slot", "current"),))] == 660.0
    assert got[("sidecar_signing_key_age_seconds", (("slot", "next"),))] == 70.0
    metrics.signing_key_loaded("next", None)
    assert ("sidecar_signing_key_age_seconds", (("slot", "next"),)) not in samples(metrics)


def test_two_instances_do_not_share_a_registry() -> None:
    first, second = Metrics(version="1"), Metrics(version="1")
    first.rate_limited("ip")
    assert ("sidecar_rate_limit_rejections_total", (("scope", "ip"),)) not in samples(second)
