"""OpenTelemetry tracing (``pip install redline[otel]``: ``opentelemetry-api`` only).

Nothing to call: once an OpenTelemetry SDK is configured in a process (your own set-up, or
``opentelemetry-instrument redline worker …``), redline's message paths open spans there and
carry the W3C trace context on, following the messaging semantic conventions
(``messaging.system = "redis"``, destination = the queue's name):

- ``enqueue`` → a PRODUCER span ``publish <queue>``; its context goes into the job document.
- each run of a job → a CONSUMER span ``process <queue>``, child of (and linked to) the
  ``publish`` span: one trace from the enqueue to every run, retries included, each with its
  attempt number.
- himporter → a SERVER span per request; its context replaces the request's ``traceparent``
  header in the envelope, so hrouter's and the handler's ``process <queue>`` spans follow it
  as children, each handing its own context on to the next hop.

Without an SDK (the API alone, or a no-op provider) redline asks one cheap question per
message and takes its untraced path. `instrument(tracer_provider)` makes redline use that
provider instead of the global one (tests do this with the SDK's in-memory exporter);
`uninstrument()` undoes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import propagate, trace
from opentelemetry.trace import (
    Link,
    NoOpTracerProvider,
    ProxyTracerProvider,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.util.types import AttributeValue

__all__ = ["OtelTracer", "active", "instrument", "uninstrument"]

SYSTEM = "redis"

try:
    _VERSION = version("redline")
except PackageNotFoundError:  # running from a source tree
    _VERSION = "0"


class _HttpSpan:
    def __init__(self, span: trace.Span, carrier: Mapping[str, str]) -> None:
        self.span, self.carrier = span, carrier

    def answered(self, status: int) -> None:
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))


def _carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _messaging(operation: str, kind: str, queue: str, message_id: str) -> dict[str, AttributeValue]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.destination.name": queue,
        "messaging.message.id": message_id,
    }


class OtelTracer:
    """redline's spans on one OpenTelemetry tracer (see the module docstring)."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.tracer = provider.get_tracer("redline", _VERSION)

    @contextmanager
    def publish(self, queue: str, message_id: str) -> Iterator[Mapping[str, str]]:
        # "send" is the semantic conventions' current name of the operation type "publish".
        attributes = _messaging("publish", "send", queue, message_id)
        with self.tracer.start_as_current_span(
            f"publish {queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            yield _carrier()

    @contextmanager
    def process(
        self,
        queue: str,
        carrier: Mapping[str, str],
        message_id: str,
        attempt: int | None = None,
        task: str = "",
    ) -> Iterator[Mapping[str, str]]:
        parent = propagate.extract(carrier)
        origin = trace.get_current_span(parent).get_span_context()
        attributes = _messaging("process", "process", queue, message_id)
        if attempt is not None:
            attributes["redline.job.attempt"] = attempt
        if task:
            attributes["redline.job.task"] = task
        with self.tracer.start_as_current_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=[Link(origin)] if origin.is_valid else (),
            attributes=attributes,
        ):
            yield _carrier()

    @contextmanager
    def http_server(
        self, method: str, path: str, headers: Iterable[tuple[str, str]]
    ) -> Iterator[_HttpSpan]:
        parent = propagate.extract(dict(headers))
        attributes: dict[str, AttributeValue] = {"http.request.method": method, "url.path": path}
        with self.tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            yield _HttpSpan(span, _carrier())


_chosen: OtelTracer | None = None  # by instrument(), or once the global provider is an SDK's
_next_look = 0.0  # monotonic time of the next look at the global provider
LOOK_EVERY = 1.0  # seconds: a provider set after start-up is used within a second


def active() -> OtelTracer | None:
    """The tracer to use now, or None while no SDK provider is configured: the check every
    message path makes. Asking OpenTelemetry for its provider costs microseconds (an
    environment lookup, an ABC isinstance), so without one it is asked once a second."""
    global _chosen, _next_look
    if _chosen is not None:
        return _chosen
    now = time.monotonic()
    if now < _next_look:
        return None
    _next_look = now + LOOK_EVERY
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    _chosen = OtelTracer(provider)  # the global provider is set once per process
    return _chosen


def instrument(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace with `tracer_provider` (default: the global one, once an SDK sets it)."""
    global _chosen
    _chosen = None if tracer_provider is None else OtelTracer(tracer_provider)


def uninstrument() -> None:
    """Back to the global provider (no spans while it is the API's default)."""
    global _next_look
    instrument(None)
    _next_look = 0.0
