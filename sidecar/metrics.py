"""Prometheus metrics on a registry the app owns (never the process-global one).

One ``Metrics`` instance per app, created in ``sidecar.app`` and reached through app state
(``sidecar.web.state.METRICS``); no module keeps a global instance, so two apps in one process
(tests) never clash. Components record through these methods, with plain strings:

=====================================================  =============================================
call                                                   family (labels)
=====================================================  =============================================
``observe_request(route, method, status, seconds)``    ``sidecar_http_request_duration_seconds``
                                                       (route, method, status); the web middleware
                                                       calls it with the route's path *template*
``webhook_decision(result, reason, credential_type)``  ``sidecar_webhook_decisions_total``
                                                       e.g. ``("allow", "api_key", "api_key")``,
                                                       ``("deny", "role_not_allowed", "session_jwt")``,
                                                       ``("error", "store_unavailable", "api_key")``;
                                                       sidecar.web.hasura calls it per answer
``token_issued(algorithm)``                            ``sidecar_tokens_issued_total`` (algorithm)
``cache(tier, hit)``                                   ``sidecar_key_cache_lookups_total``
                                                       (tier: ``memory``/``redis``, result: hit/miss)
``store_call(operation, seconds)``                     ``sidecar_store_call_duration_seconds``
``redis_call(operation, seconds)``                     ``sidecar_redis_call_duration_seconds``
``rate_limited(scope)``                                ``sidecar_rate_limit_rejections_total``
``overloaded()``                                       ``sidecar_overload_rejections_total``: 503s
                                                       beyond ``SIDECAR_LIMITS__MAX_CONCURRENT_REQUESTS``
``browser_credential_refused(reason, key_type)``      ``sidecar_browser_credential_refusals_total``
                                                       (reason: ``secret_key_from_browser``/
                                                       ``origin_not_allowed``, key_type)
``signing_key_loaded(slot, created_at)``               ``sidecar_signing_key_age_seconds`` (slot:
                                                       current/next/previous); age computed at scrape
(constructor)                                          ``sidecar_build_info`` (version, python)
=====================================================  =============================================

Label values are short, stable, lower-case identifiers chosen by our code (reasons, tiers,
operations). A value that does not look like one (too long, upper case, dots: the shape of a key,
a token or most ids) is recorded as ``other``, so a caller's mistake cannot put a secret or an
unbounded set of values into a label. Algorithms are checked against the JOSE names instead.

Several worker processes: prometheus-client's multiprocess mode is switched on by its own
environment variable ``PROMETHEUS_MULTIPROC_DIR`` (an empty, writable directory, wiped before each
start), which must be set before the process starts. Settings read the same variable and pass it
here as ``multiprocess_dir``; ``render`` then merges every process's files. ``sidecar serve`` runs
one process, so it is needed only when a process manager forks several workers sharing one port.

The request path's four families (request latency, webhook decisions, key-cache lookups, tokens) are
``sidecar.hot_metrics``'s plain-number families in one process, prometheus-client's in
multiprocess mode; the exposition is the same either way.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from sidecar.hot_metrics import LocalCounter, LocalHistogram

#: From 0.1 ms (a cached webhook answer) to 10 s.
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
OTHER: Final = "other"
_SAFE_LABEL = re.compile(r"[a-z0-9_]{1,48}")
_ROUTE_LABEL = re.compile(r"[A-Za-z0-9_./{}:\-]{1,120}")
_ALGORITHMS = frozenset(
    [
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "HS256",
        "HS384",
        "HS512",
    ]
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CACHED_CHILDREN = 2000


def safe_label(value: str) -> str:
    """``value`` if it is a short lower-case identifier, else ``other``."""
    return value if _SAFE_LABEL.fullmatch(value) else OTHER


class _Observer(Protocol):
    """The part of a histogram child the hot path uses."""

    def observe(self, amount: float) -> None: ...


class _Incrementer(Protocol):
    """The part of a counter child the hot path uses."""

    def inc(self) -> None: ...


Child = TypeVar("Child", covariant=True)


class _Labelled(Protocol[Child]):
    """A labelled family: prometheus-client's, or ``sidecar.hot_metrics``'s."""

    def labels(self, **values: str) -> Child: ...


class Metrics:
    """Every metric family of one app, on ``self.registry``."""

    def __init__(
        self,
        *,
        version: str,
        registry: CollectorRegistry | None = None,
        multiprocess_dir: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        self._wall_clock = wall_clock
        r = self.registry
        # the request path's families: plain numbers in one process (sidecar.hot_metrics)
        histogram: Callable[..., _Labelled[_Observer]] = Histogram if multiprocess_dir else LocalHistogram
        counter: Callable[..., _Labelled[_Incrementer]] = Counter if multiprocess_dir else LocalCounter
        self._requests = histogram(
            "sidecar_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._decisions = counter(
            "sidecar_webhook_decisions",
            "Hasura webhook decisions by result (allow/deny/error), reason and credential type.",
            ("result", "reason", "credential_type"),
            registry=r,
        )
        self._tokens = counter(
            "sidecar_tokens_issued", "Session JWTs issued, by signing algorithm.", ("algorithm",), registry=r
        )
        self._cache = counter(
            "sidecar_key_cache_lookups",
            "Key-cache lookups by tier (memory, redis) and result (hit, miss).",
            ("tier", "result"),
            registry=r,
        )
        self._store = Histogram(
            "sidecar_store_call_duration_seconds",
            "Time of calls to the key store, by operation.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._redis = Histogram(
            "sidecar_redis_call_duration_seconds",
            "Time of calls to Redis, by operation.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._rate_limited = Counter(
            "sidecar_rate_limit_rejections", "Requests rejected by a rate limit, by scope.", ("scope",), registry=r
        )
        self._overloaded = Counter(
            "sidecar_overload_rejections",
            "Requests answered 503 because too many were in flight.",
            registry=r,
        )
        self._browser_refusals = Counter(
            "sidecar_browser_credential_refusals",
            "Credentials refused because of the browser Origin they came with: a secret or restricted key in "
            "a browser (leaked), or a publishable key from an origin it does not allow.",
            ("reason", "key_type"),
            registry=r,
        )
        self._key_age = Gauge(
            "sidecar_signing_key_age_seconds",
            "Age of each loaded signing key, by slot (current, next, previous).",
            ("slot",),
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        build = Gauge(
            "sidecar_build_info",
            "Always 1; the labels say which build is running.",
            ("version", "python"),
            registry=r,
            multiprocess_mode="livemax",
        )
        build.labels(version=version, python=".".join(map(str, sys.version_info[:3]))).set(1)
        self._request_children: dict[tuple[str, str, int], _Observer] = {}
        self._decision_children: dict[tuple[str, str, str], _Incrementer] = {}
        self._cache_children: dict[tuple[str, bool], _Incrementer] = {}
        self._token_children: dict[str, _Incrementer] = {}
        self._key_created: dict[str, float] = {}

    # --- the hot path -------------------------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the matched path template, never the raw path."""
        child = self._request_children.get((route, method, status))
        if child is None:
            child = self._request_child(route, method, status)
        child.observe(seconds)

    def _request_child(self, route: str, method: str, status: int) -> _Observer:
        child: _Observer = self._requests.labels(
            route=route if _ROUTE_LABEL.fullmatch(route) else OTHER,
            method=method if method in _METHODS else OTHER,
            status=str(status) if 100 <= status <= 599 else OTHER,
        )
        if len(self._request_children) < _MAX_CACHED_CHILDREN:
            self._request_children[(route, method, status)] = child
        return child

    def webhook_decision(self, result: str, reason: str, credential_type: str) -> None:
        """One answer of the Hasura webhook: ``result`` is ``allow`` (200), ``deny`` (401) or
        ``error`` (503: it could not decide); ``reason`` is the refusal's reason, or for an allow
        the credential type (``over_limit`` when let through over its rate limit)."""
        key = (result, reason, credential_type)
        child = self._decision_children.get(key)
        if child is None:
            child = self._decisions.labels(
                result=safe_label(result), reason=safe_label(reason), credential_type=safe_label(credential_type)
            )
            if len(self._decision_children) < _MAX_CACHED_CHILDREN:
                self._decision_children[key] = child
        child.inc()

    def cache(self, tier: str, hit: bool) -> None:
        """One key-cache lookup in ``tier`` (``memory`` or ``redis``)."""
        child = self._cache_children.get((tier, hit))
        if child is None:
            child = self._cache.labels(tier=safe_label(tier), result="hit" if hit else "miss")
            if len(self._cache_children) < _MAX_CACHED_CHILDREN:
                self._cache_children[(tier, hit)] = child
        child.inc()

    # --- everything else ----------------------------------------------------------------------

    def token_issued(self, algorithm: str) -> None:
        """One session JWT (or OAuth access token) signed with ``algorithm`` (``RS256``, …)."""
        child = self._token_children.get(algorithm)
        if child is None:
            child = self._tokens.labels(algorithm=algorithm if algorithm in _ALGORITHMS else OTHER)
            if len(self._token_children) < _MAX_CACHED_CHILDREN:
                self._token_children[algorithm] = child
        child.inc()

    def store_call(self, operation: str, seconds: float) -> None:
        """One store call (``get_key_by_digest``, ``insert_key``, …) that took ``seconds``."""
        self._store.labels(operation=safe_label(operation)).observe(seconds)

    def redis_call(self, operation: str, seconds: float) -> None:
        """One Redis command or pipeline (``get``, ``set``, ``incr``, …) that took ``seconds``."""
        self._redis.labels(operation=safe_label(operation)).observe(seconds)

    def rate_limited(self, scope: str) -> None:
        """One request rejected with 429 by the limit named ``scope`` (``api_key``, ``ip``, …)."""
        self._rate_limited.labels(scope=safe_label(scope)).inc()

    def overloaded(self) -> None:
        """One request answered 503 because the process had too many in flight."""
        self._overloaded.inc()

    def browser_credential_refused(self, reason: str, key_type: str) -> None:
        """One credential refused for the ``Origin`` it came with (``reason``: why; ``key_type``: its type)."""
        self._browser_refusals.labels(reason=safe_label(reason), key_type=safe_label(key_type)).inc()

    def signing_key_loaded(self, slot: str, created_at: float | None) -> None:
        """The key in ``slot`` (``current``, ``next``, ``previous``) was created at ``created_at``
        (UNIX seconds); ``None`` empties the slot. The age is computed when Prometheus scrapes."""
        slot = safe_label(slot)
        if created_at is None:
            if self._key_created.pop(slot, None) is not None:
                self._key_age.remove(slot)
            return
        self._key_created[slot] = created_at

    # --- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The exposition in Prometheus text format (``CONTENT_TYPE``)."""
        now = self._wall_clock()
        for slot, created in self._key_created.items():
            self._key_age.labels(slot=slot).set(max(0.0, now - created))
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self._multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)
