"""OpenTelemetry tracing (``pip install redline[otel]``): the public names of
`redline.runtime.otel`, where the message paths' spans are made (it sits in the runtime, below
the parts that call it, so that the layers stay acyclic). See docs/integrations.md."""

from __future__ import annotations

from redline.runtime.otel import OtelTracer, active, instrument, uninstrument

__all__ = ["OtelTracer", "active", "instrument", "uninstrument"]
