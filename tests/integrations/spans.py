"""Spans of real processes, for the tracing tests: an SDK set up to write each finished span as
one JSON line to the file named by REDLINE_TEST_SPANS (see otel_site/sitecustomize.py), and
the reading side."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

ENV = "REDLINE_TEST_SPANS"


class FileExporter(SpanExporter):
    """Appends each span as a JSON line (one write per span: processes may be killed)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


def install_from_env() -> None:
    path = os.environ.get(ENV)
    if path:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(FileExporter(path)))
        trace.set_tracer_provider(provider)


@dataclass(frozen=True)
class Span:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    status: str
    attributes: dict[str, Any]
    links: list[str]  # the span ids linked to

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Span:
        return cls(
            name=raw["name"],
            kind=raw["kind"].removeprefix("SpanKind."),
            trace_id=raw["context"]["trace_id"],
            span_id=raw["context"]["span_id"],
            parent_id=raw["parent_id"],
            status=raw["status"]["status_code"],
            attributes=raw["attributes"],
            links=[link["context"]["span_id"] for link in raw["links"]],
        )


def read_spans(path: Path) -> list[Span]:
    if not path.exists():
        return []
    return [Span.of(json.loads(line)) for line in path.read_text().splitlines() if line]
