"""OpenTelemetry in one process: the spans of a retried job (the SDK's in-memory exporter), the
trace context in the job document, and nothing at all without an SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from redline.connection import AsyncClient
from redline.integrations import otel
from redline.jobs import enqueue
from redline.runtime import tracing
from redline.testing import Jobs, run_jobs
from tests.helpers import spawn, stop, wait_for
from tests.integrations import plugin_tasks as pt


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    otel.instrument(made)
    yield made
    otel.uninstrument()


def finished(provider: TracerProvider) -> list[ReadableSpan]:
    processor = provider._active_span_processor._span_processors[0]
    exporter: InMemorySpanExporter = processor.span_exporter  # type: ignore[attr-defined]
    return list(exporter.get_finished_spans())


async def test_a_retried_job_is_one_trace_from_the_enqueue_to_each_run(
    provider: TracerProvider, redline_client: AsyncClient, redline_url: str, redline_jobs: Jobs
) -> None:
    with provider.get_tracer("test").start_as_current_span("signup") as outer:
        job = await enqueue(redline_client, pt.flaky, redline_url, 1)  # fails once
    assert job is not None
    doc = redline_jobs.assert_enqueued(pt.flaky)
    assert set(doc.trace) == {"traceparent"}
    runs = await run_jobs(redline_client, "p:jobs")
    assert [(r.attempt, r.ok) for r in runs] == [(1, False), (2, True)]

    spans = {s.name: s for s in finished(provider) if s.name != "process p:jobs"}
    publish = spans["publish p:jobs"]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == outer.get_span_context().span_id
    assert dict(publish.attributes or {}) == {
        "messaging.system": "redis",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.destination.name": "p:jobs",
        "messaging.message.id": job.id,
    }
    assert doc.trace["traceparent"].split("-")[2] == f"{publish.context.span_id:016x}"

    processed = [s for s in finished(provider) if s.name == "process p:jobs"]
    assert [s.attributes["redline.job.attempt"] for s in processed] == [1, 2]  # type: ignore[index]
    for run in processed:
        assert run.kind is SpanKind.CONSUMER
        assert run.context.trace_id == publish.context.trace_id
        assert run.parent is not None and run.parent.span_id == publish.context.span_id
        assert [link.context.span_id for link in run.links] == [publish.context.span_id]
        assert run.attributes["messaging.message.id"] == job.id  # type: ignore[index]
        assert run.attributes["redline.job.task"] == pt.flaky.name  # type: ignore[index]
    first, second = processed
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert second.status.status_code is StatusCode.UNSET


async def test_without_an_sdk_nothing_is_traced_and_documents_carry_no_context(
    redline_client: AsyncClient, redline_url: str, redline_jobs: Jobs
) -> None:
    assert tracing.tracer() is None  # opentelemetry-api is installed, no SDK provider is set
    await enqueue(redline_client, pt.double, redline_url, 1)
    [doc] = redline_jobs.enqueued("p:jobs")
    assert doc.trace == {}
    payload = redline_jobs.client.lrange("p:jobs", 0, -1)[0]
    assert b"trace" not in payload
    assert [r.ok for r in await run_jobs(redline_client, "p:jobs")] == [True]


def test_the_core_imports_and_runs_without_opentelemetry() -> None:
    """With opentelemetry missing, the core imports, `tracer()` is None, and no integration
    module is loaded by importing the core."""
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed: importing it raises ImportError
import redline.cli, redline.jobs, redline.http.himporter, redline.http.worker
assert not [m for m in sys.modules if m.startswith("redline.integrations")], sys.modules
from redline.runtime import tracing
assert tracing.tracer() is None and tracing.tracer() is None
from redline.jobs import JobDocument
assert "trace" not in JobDocument(task="t").to_json()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout == "ok\n", done.stderr


def test_a_broken_trace_field_never_stops_a_job() -> None:
    from redline.jobs import JobDocument

    doc = JobDocument.decode(b'{"task": "t", "trace": {"traceparent": 7, "x": "y"}}')
    assert doc.trace == {"x": "y"}
    assert JobDocument.decode(b'{"task": "t", "trace": "00-abc"}').trace == {}


async def test_a_job_fanned_out_by_mpush_keeps_the_trace_of_its_enqueue(
    provider: TracerProvider, redline_client: AsyncClient, redline_url: str, tmp_path: Path
) -> None:
    """mpush forwards bytes unchanged: the trace context inside a job document arrives with it,
    and each copy's run is a child of the one enqueue (mpush itself adds no span)."""
    config = tmp_path / "mpush.json"
    outs = ["p:jobs", "p:copy"]
    config.write_text(
        json.dumps({"redis": redline_url, "in": "m:in", "pending": "m:pending", "out": outs})
    )
    log = tmp_path / "mpush.log"
    mpush = spawn("mpush", "--config", str(config), "--set", "popTimeout=0.5", log=log)
    waiting = redis.Redis.from_url(redline_url)
    try:
        await enqueue(redline_client, pt.double.options(queue="m:in"), redline_url, 3)
        for out in outs:
            wait_for(lambda o=out: waiting.llen(o) == 1, timeout=30)  # type: ignore[misc]
    finally:
        assert stop(mpush) == 0
        waiting.close()
    runs = await run_jobs(redline_client, outs)
    assert [(r.queue, r.ok) for r in runs] == [("p:jobs", True), ("p:copy", True)]
    [publish] = [s for s in finished(provider) if s.name == "publish m:in"]
    processed = [s for s in finished(provider) if s.name.startswith("process ")]
    assert sorted(s.name for s in processed) == ["process p:copy", "process p:jobs"]
    for run in processed:
        assert run.parent is not None and run.parent.span_id == publish.context.span_id
