"""Metrics: ``<ns>:metrics:<name>`` hashes, shared by every replica, readable by any client.

Each hash has ``count``, ``sum`` and ``max`` (milliseconds for durations, so ``sum / count`` is
the mean) and, for durations measured against a timeout, a histogram of tenths of that timeout:
``histo10`` (≤ 10 %) … ``histo100`` (≤ 100 %) and ``above`` (timed out). Beside them a hash may
hold *values*: fields set rather than added to (a gauge such as the current attempt, or a note
such as the last error), where the latest write wins.

A service observes into a local `Metrics` accumulator (no round trip per message); the
accumulator is a runner `Hook` that adds what it holds to Redis on every tick and at stop, one
script call per metric name. It also adds, in one more call, the instance's own totals since its
start to its lifecycle hash (``calls``, ``timeouts``, ``errors``: what
`redline.scaling.health` judges an instance by). A metric named ``errors`` (or ending in
``:errors``/``_errors``, or the jobs worker's ``failed``) counts failures.

Errors are also kept as text: `record_error` (called by the runner when a step fails, and by any
service that wants to) pushes onto ``<ns>:errors``, a list capped at `ERRORS_KEPT`, newest first,
which `redline status` shows. It costs nothing until something fails.

`serve_prometheus` exposes the metrics hashes in Prometheus text format.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from redline.connection import AsyncClient, SyncClient, connect_sync, text
from redline.runtime.context import Context
from redline.scripting import scripts

__all__ = [
    "ERRORS_KEPT",
    "FIELDS",
    "HISTOGRAM",
    "Metrics",
    "Value",
    "bucket",
    "errors_key",
    "is_error_metric",
    "metrics_key",
    "read_all_sync",
    "read_metrics",
    "read_metrics_sync",
    "recent_errors",
    "record_error",
    "serve_prometheus",
]

log = logging.getLogger(__name__)

HISTOGRAM = (*(f"histo{tenth}" for tenth in range(10, 101, 10)), "above")
FIELDS = ("count", "sum", "max", *HISTOGRAM)
ERRORS_KEPT = 50


def metrics_key(ns: str, name: str) -> str:
    """``<ns>:metrics:<name>``."""
    return f"{ns}:metrics:{name}"


def errors_key(ns: str) -> str:
    """``<ns>:errors``: the recent errors of the namespace's instances (JSON), newest first."""
    return f"{ns}:errors"


def is_error_metric(name: str) -> bool:
    """True for a metric that counts failures (``errors``, ``…:errors``, ``…_errors``, and the
    jobs worker's ``failed``)."""
    return name in ("errors", "failed") or name.endswith((":errors", "_errors"))


async def record_error(client: AsyncClient, ns: str, message: str, instance: str = "") -> None:
    """Note one error of `ns`: keep `message` in ``<ns>:errors`` (capped), count it in
    ``<ns>:metrics:errors`` and, given its lifecycle hash `instance`, in that hash's ``errors``.

    >>> await record_error(client, "demo:mpush", "bad payload 7", "demo:mpush:3")
    """
    entry = {"t": time.time(), "host": socket.gethostname(), "instance": instance, "msg": message}
    async with client.pipeline(transaction=False) as pipe:  # keys in several slots
        pipe.lpush(errors_key(ns), json.dumps(entry))
        pipe.ltrim(errors_key(ns), 0, ERRORS_KEPT - 1)
        pipe.hincrby(metrics_key(ns, "errors"), "count", 1)
        await pipe.execute()
    if instance:
        await scripts.run(client, "hash_incr_if_exists", [instance], ["errors", 1])


async def recent_errors(client: AsyncClient, ns: str, count: int = 10) -> list[dict[str, Any]]:
    """The newest `count` errors of `ns` (``t``, ``host``, ``instance``, ``msg``)."""
    return [json.loads(raw) for raw in await client.lrange(errors_key(ns), 0, count - 1)]


def bucket(value: float, timeout: float) -> str:
    """The histogram field of `value` measured against `timeout` (same unit)."""
    if value > timeout:
        return "above"
    tenth = max(1, math.ceil(10 * value / timeout)) if timeout > 0 else 10
    return HISTOGRAM[tenth - 1]


Value = int | str


@dataclass
class _Pending:
    fields: dict[str, int] = field(default_factory=dict)
    max: int | None = None
    values: dict[str, Value] = field(default_factory=dict)


@dataclass
class Metrics:
    """Accumulates observations locally; as a `Hook`, adds them to Redis every tick and at stop.

    >>> metrics = Metrics("demo:mpush", timeout_ms=10_000)
    >>> metrics.observe("done", 250)        # a duration, histogram against the timeout
    >>> metrics.count("forwarded", 100)     # a plain counter
    >>> metrics.set("retries", attempt=3, lastError="ConnectionError: refused")  # latest wins
    """

    namespace: str
    timeout_ms: int = 10_000
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def _of(self, name: str) -> _Pending:
        # Not setdefault(name, _Pending()): that builds a _Pending on every call (a request's).
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = _Pending()
        return pending

    def count(self, name: str, amount: int = 1) -> None:
        """Add `amount` to the ``count`` of metric `name`."""
        # Written out, as `observe`: each hop counts each request.
        fields = (self._pending.get(name) or self._of(name)).fields
        fields["count"] = fields.get("count", 0) + amount

    def observe(self, name: str, millis: float, histogram: bool = True) -> None:
        """Record one duration: count, sum, max and (with `histogram`) its tenth of the timeout."""
        # Written out (no `bucket` call within the timeout): himporter observes every response.
        value = round(millis)
        pending = self._pending.get(name) or self._of(name)
        fields, most = pending.fields, pending.max
        fields["count"] = fields.get("count", 0) + 1
        fields["sum"] = fields.get("sum", 0) + value
        if most is None or value > most:
            pending.max = value
        if histogram:
            timeout = self.timeout_ms
            if 0 < value <= timeout:
                tenth = HISTOGRAM[-(-10 * value // timeout) - 1]
            else:
                tenth = bucket(value, timeout)
            fields[tenth] = fields.get(tenth, 0) + 1

    def set(self, name: str, **values: Value) -> None:
        """Set fields of metric `name` to `values` (replacing, not adding) at the next flush."""
        self._of(name).values.update(values)

    async def flush(self, client: AsyncClient, instance: str = "") -> None:
        """Add everything observed since the last flush to the metrics hashes and, given the
        lifecycle hash `instance`, the totals to that instance's own counters."""
        taken, self._pending = self._pending, {}
        for name, pending in taken.items():
            args: list[Value] = ["" if pending.max is None else pending.max, len(pending.fields)]
            for pairs in (pending.fields, pending.values):
                for key, value in pairs.items():
                    args += [key, value]
            await scripts.run(client, "metrics_add", [metrics_key(self.namespace, name)], args)
        totals = _instance_totals(taken)
        if instance and totals:
            await scripts.run(client, "hash_incr_if_exists", [instance], totals)

    async def start(self, ctx: Context) -> None:
        return None

    async def tick(self, ctx: Context) -> None:
        await self.flush(ctx.lifecycle_redis, ctx.instance_key)

    async def stop(self, ctx: Context) -> None:
        await self.flush(ctx.lifecycle_redis, ctx.instance_key)


def _instance_totals(taken: dict[str, _Pending]) -> list[str | int]:
    """``calls``, ``timeouts``, ``errors`` of one flush, as HINCRBY arguments (none if zero)."""
    totals = {"calls": 0, "timeouts": 0, "errors": 0}
    for name, pending in taken.items():
        count = pending.fields.get("count", 0)
        totals["errors" if is_error_metric(name) else "calls"] += count
        totals["timeouts"] += pending.fields.get("above", 0)
    return [item for pair in totals.items() if pair[1] for item in pair]


def _pattern(ns: str) -> str:
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in ns)
    return metrics_key(escaped, "*")


def _decode(raw: dict[Any, Any]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key, value in raw.items():
        name, note = text(key), text(value, errors="replace")
        try:
            out[name] = int(float(note))
        except (ValueError, OverflowError):
            out[name] = note  # a note, such as a last error
    return out


def _numbers(values: dict[str, Value]) -> dict[str, int]:
    return {key: value for key, value in values.items() if isinstance(value, int)}


def _name(ns: str, key: Any) -> str:
    return text(key)[len(metrics_key(ns, "")) :]


async def read_metrics(client: AsyncClient, ns: str) -> dict[str, dict[str, int]]:
    """Every metric of namespace `ns`: name → numeric fields (``count``, ``sum``, ``max``, …).

    Text values (a last error) are left out; `read_all_sync` has them too.
    """
    found = {}
    async for key in client.scan_iter(match=_pattern(ns), count=500):
        found[_name(ns, key)] = _numbers(_decode(await client.hgetall(key)))
    return dict(sorted(found.items()))


def read_all_sync(client: SyncClient, ns: str) -> dict[str, dict[str, Value]]:
    """Every metric of namespace `ns` with every field: numbers, and text values as text."""
    found = {}
    for key in client.scan_iter(match=_pattern(ns), count=500):
        found[_name(ns, key)] = _decode(client.hgetall(key))
    return dict(sorted(found.items()))


def read_metrics_sync(client: SyncClient, ns: str) -> dict[str, dict[str, int]]:
    """Blocking twin of `read_metrics`."""
    return {name: _numbers(values) for name, values in read_all_sync(client, ns).items()}


class RedisMetricsCollector(Collector):
    """Reads the metrics hashes of a namespace at every scrape (so all replicas are included)."""

    def __init__(self, url: str, ns: str) -> None:
        self.client, self.ns = connect_sync(url, socket_timeout=5), ns

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "name"]
        families = {
            "count": GaugeMetricFamily("redline_metric_count", "observations", labels=labels),
            "sum": GaugeMetricFamily("redline_metric_sum_ms", "sum of durations", labels=labels),
            "max": GaugeMetricFamily("redline_metric_max_ms", "largest duration", labels=labels),
        }
        histo = GaugeMetricFamily(
            "redline_metric_histogram",
            "observations per tenth of the timeout (le=1.1: above it)",
            labels=[*labels, "le"],
        )
        gauge = GaugeMetricFamily(
            "redline_metric_value", "a numeric value set by a service", labels=[*labels, "field"]
        )
        for name, values in read_metrics_sync(self.client, self.ns).items():
            for key, family in families.items():
                if key in values:
                    family.add_metric([self.ns, name], values[key])
            for index, key in enumerate(HISTOGRAM, start=1):
                if key in values:
                    histo.add_metric([self.ns, name, f"{index / 10:.1f}"], values[key])
            for key in sorted(set(values) - set(FIELDS)):
                gauge.add_metric([self.ns, name, key], values[key])
        yield from (*families.values(), histo, gauge)


def serve_prometheus(port: int, url: str, ns: str, host: str = "0.0.0.0") -> CollectorRegistry:
    """Serve the namespace's metrics at ``http://host:port/metrics`` (a daemon thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisMetricsCollector(url, ns))
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics: serving Prometheus text on port %s for ns=%s", port, ns)
    return registry
