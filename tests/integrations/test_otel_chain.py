"""OpenTelemetry across real processes: one HTTP request through himporter → hrouter → a
handler service that enqueues a job, and the job's two runs in a worker (the first fails), all
in one trace with the expected parents and links. Each process configures the SDK from
otel_site/sitecustomize.py and writes its spans to a file (tests/integrations/spans.py)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx

from tests.helpers import spawn, stop, wait_for
from tests.http.web import topology
from tests.integrations import otel_app
from tests.integrations.spans import ENV, Span, read_spans
from tests.servers import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

CONFIG = """
[defaults]
serviceNamespace = "o:web"
popTimeout = 0.5

[services.himporter]
out = "o:http"

[services.hrouter]
in = "o:http"
routes = [{{ path = "/.*", queue = "o:hello" }}]

[services.hello]
kind = "handler"
in = "o:hello"
module = "{module}"
"""


def one(spans: list[Span], name: str) -> Span:
    [found] = [s for s in spans if s.name == name]
    return found


def test_one_trace_from_an_http_request_to_each_run_of_the_job_it_enqueued(
    redis_url: str, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    env = {
        "PYTHONPATH": os.pathsep.join([str(HERE / "otel_site"), str(REPO)]),
        ENV: str(spans_file),
        "REDLINE_TEST_JOBS_URL": redis_url,
    }
    config = tmp_path / "redline.toml"
    config.write_text(CONFIG.format(module=Path(otel_app.__file__).as_posix()))
    port = free_port()
    worker = spawn(
        "worker",
        otel_app.__name__,
        "--redis",
        redis_url,
        env=env,
        log=tmp_path / "worker.log",
        cwd=REPO,
    )
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    try:
        os.environ.update(env)  # `redline up` (spawned by topology) inherits it
        try:
            with topology(config, redis_url, port, tmp_path / "up.log", ready=("/ready",)):
                reply = httpx.get(
                    f"http://127.0.0.1:{port}/hello/ann",
                    headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
                    timeout=30,
                )
                assert reply.status_code == 200, reply.text
                job_id = reply.text.strip()

                def both_runs() -> bool:
                    ours = [s for s in read_spans(spans_file) if s.trace_id == f"0x{trace_id}"]
                    return len([s for s in ours if s.name == "process o:jobs"]) == 2

                wait_for(both_runs, timeout=60)
        finally:
            for name in env:
                os.environ.pop(name, None)
    finally:
        assert stop(worker, timeout=30) == 0, (tmp_path / "worker.log").read_text()[-3000:]

    spans = [s for s in read_spans(spans_file) if s.trace_id == f"0x{trace_id}"]
    server = one(spans, "GET")
    assert (server.kind, server.parent_id) == ("SERVER", f"0x{client_span}")
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/hello/ann"

    router = one(spans, "process o:http")
    handler = one(spans, "process o:hello")
    publish = one(spans, "publish o:jobs")
    for span, parent in ((router, server), (handler, router), (publish, handler)):
        assert span.parent_id == parent.span_id, (span, parent)
    for hop, queue in ((router, "o:http"), (handler, "o:hello")):
        assert hop.kind == "CONSUMER" and hop.links == [hop.parent_id]
        assert hop.attributes["messaging.system"] == "redis"
        assert hop.attributes["messaging.operation.type"] == "process"
        assert hop.attributes["messaging.destination.name"] == queue
    assert publish.kind == "PRODUCER" and publish.attributes["messaging.message.id"] == job_id

    runs = sorted(
        (s for s in spans if s.name == "process o:jobs"),
        key=lambda s: s.attributes["redline.job.attempt"],
    )
    assert [(r.attributes["redline.job.attempt"], r.status) for r in runs] == [
        (1, "ERROR"),
        (2, "UNSET"),
    ]
    for run in runs:
        assert run.kind == "CONSUMER"
        assert run.parent_id == publish.span_id and run.links == [publish.span_id]
        assert run.attributes["messaging.message.id"] == job_id
    assert len(spans) == 6  # nothing else in the trace (the readiness probes have their own)
