"""The request path's counters and latency histogram, kept as plain numbers until a scrape.

prometheus-client's children take a lock and make four Python calls per increment: about 0.6 µs
for a counter and 1.1 µs for the latency histogram, 2.2 µs of every webhook call (of about 37).
Here an increment is one addition to an attribute: every call on the request path runs in the
event loop's thread, the only writer, so no lock is needed. ``collect`` writes the families out
as prometheus-client's ``Counter`` and ``Histogram`` write theirs (same samples, same order,
``_created`` included unless prometheus-client's ``disable_created_metrics`` was called).

Only for one process: in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) values must live in
prometheus-client's shared files, and ``sidecar.metrics.Metrics`` keeps its children there.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

import prometheus_client.metrics
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString


def _created_wanted() -> bool:
    # prometheus-client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics())
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


class CounterCell:
    """One labelled counter."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self) -> None:
        self.value += 1


class HistogramCell:
    """One labelled histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1  # the first bucket whose bound is >= amount
        self.sum += amount


Cell = TypeVar("Cell", CounterCell, HistogramCell)


class _Family(Collector, Generic[Cell]):
    _type = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._cells: dict[tuple[str, ...], Cell] = {}
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        yield Metric(self._name, self._documentation, self._type)

    def labels(self, **values: str) -> Cell:
        """The cell of these label values (all of the family's labels, by name), made at first use."""
        if set(values) != set(self._labelnames):
            raise ValueError(f"{self._name} takes the labels {', '.join(self._labelnames)}")
        key = tuple(values[name] for name in self._labelnames)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = self._new_cell()
        return cell

    def _new_cell(self) -> Cell:
        raise NotImplementedError

    def _labelled(self) -> Iterator[tuple[dict[str, str], Cell]]:
        for key, cell in list(self._cells.items()):
            yield dict(zip(self._labelnames, key, strict=True)), cell


class LocalCounter(_Family[CounterCell]):
    """A labelled counter family: ``<name>_total`` and ``<name>_created`` per label set."""

    _type = "counter"

    def _new_cell(self) -> CounterCell:
        return CounterCell()

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self._name, self._documentation, self._type)
        created = _created_wanted()
        for labels, cell in self._labelled():
            metric.add_sample(self._name + "_total", labels, cell.value)
            if created:
                metric.add_sample(self._name + "_created", labels, cell.created)
        yield metric


class LocalHistogram(_Family[HistogramCell]):
    """A labelled histogram family: ``_bucket`` (cumulative, ``le``), ``_count``, ``_sum``, ``_created``."""

    _type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(bounds) or not bounds:
            raise ValueError("buckets must be given in increasing order")
        self._bounds = bounds if bounds[-1] == INF else (*bounds, INF)
        self._les = tuple(floatToGoString(b) for b in self._bounds)  # type: ignore[no-untyped-call]

    def _new_cell(self) -> HistogramCell:
        return HistogramCell(self._bounds)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self._name, self._documentation, self._type)
        created = _created_wanted()
        for labels, cell in self._labelled():
            total = 0.0
            for le, count in zip(self._les, list(cell.counts), strict=True):
                total += count
                metric.add_sample(self._name + "_bucket", {**labels, "le": le}, total)
            metric.add_sample(self._name + "_count", labels, total)
            metric.add_sample(self._name + "_sum", labels, cell.sum)
            if created:
                metric.add_sample(self._name + "_created", labels, cell.created)
        yield metric
