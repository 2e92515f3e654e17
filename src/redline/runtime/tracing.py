"""Where redline's message paths meet tracing: one cheap check, and nothing at all without it.

The paths that carry a message (``enqueue`` and the jobs worker; himporter, hrouter and the
handler services) ask `tracer()` once per message. It returns None unless OpenTelemetry is
installed (``pip install redline[otel]``) *and* a tracer provider from an SDK is configured (or
``redline.integrations.otel.instrument(provider)`` was called); then they take their usual
path, untouched. Otherwise they run inside the spans it opens and carry the W3C trace context
it gives them: in a job document's ``trace`` field, in an HTTP envelope's ``traceparent`` and
``tracestate`` headers. See docs/integrations.md.

This module is the core's only contact with the OpenTelemetry integration, and it imports it
only when first asked, only when ``opentelemetry-api`` is installed: the core imports and runs
without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["HttpSpan", "Tracer", "tracer", "with_carrier"]

TRACE_HEADERS = ("traceparent", "tracestate")


class HttpSpan(Protocol):
    """The span of one HTTP request at the importer."""

    carrier: Mapping[str, str]  # its context, as the headers to hand on

    def answered(self, status: int) -> None:
        """Record the response's status code."""


class Tracer(Protocol):
    """What the message paths call when tracing is on (``redline.integrations.otel``)."""

    def publish(self, queue: str, message_id: str) -> AbstractContextManager[Mapping[str, str]]:
        """A producer span around putting one message on `queue`; gives the carrier (the
        trace context) to put in the message."""

    def process(
        self,
        queue: str,
        carrier: Mapping[str, str],
        message_id: str,
        attempt: int | None = None,
        task: str = "",
    ) -> AbstractContextManager[Mapping[str, str]]:
        """A consumer span around handling one message of `queue` whose trace context is
        `carrier`; gives its own context, for messages sent on from inside it."""

    def http_server(
        self, method: str, path: str, headers: Iterable[tuple[str, str]]
    ) -> AbstractContextManager[HttpSpan]:
        """A server span around one HTTP request, child of its ``traceparent`` if any."""


def _not_loaded() -> Tracer | None:
    global _active
    try:
        from redline.runtime import otel
    except ImportError:  # opentelemetry-api is not installed: tracing stays off
        _active = _off
    else:
        _active = otel.active
    return _active()


def _off() -> Tracer | None:
    return None


_active: Callable[[], Tracer | None] = _not_loaded


def tracer() -> Tracer | None:
    """The tracer to use for this message, or None (no OpenTelemetry SDK configured)."""
    return _active()


def with_carrier(
    headers: Iterable[tuple[str, str]], carrier: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """`headers` with their trace context replaced by `carrier`'s (as each HTTP hop does)."""
    dropped = {*TRACE_HEADERS, *carrier}
    kept = [(name, value) for name, value in headers if name not in dropped]
    return (*kept, *carrier.items())
