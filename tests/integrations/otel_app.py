"""The traced chain's application, run in real processes by tests/integrations/test_otel_chain.py:
a handler (loaded by `redline up` from this file) that enqueues a job, and the job's task
(run by `redline worker tests.integrations.otel_app`), which fails its first attempt."""

from __future__ import annotations

import os

import redis

from redline.connection import AsyncClient, connect
from redline.http import handler
from redline.http.envelope import Request
from redline.jobs import enqueue, task

_client: list[AsyncClient] = []


def jobs_url() -> str:
    return os.environ["REDLINE_TEST_JOBS_URL"]


# Named: `redline up` loads this file as the module "otel_app", the worker imports it by its
# dotted name; both must agree on the task's name.
@task(name="tests.integrations.otel_app.greet", queue="o:jobs", retries=2, backoff=0.05)
def greet(url: str, name: str) -> str:
    with redis.Redis.from_url(url) as client:
        attempt = int(client.incr(f"o:greet:{name}"))
    if attempt == 1:
        raise RuntimeError("the first attempt fails")
    return f"greeted {name}"


@handler("GET /ready")
def ready(request: Request) -> str:
    return "ok\n"


@handler(r"GET /hello/(?P<name>\w+)")
async def hello(request: Request, name: str) -> str:
    if not _client:
        _client.append(connect(jobs_url()))
    job = await enqueue(_client[0], greet, jobs_url(), name)
    assert job is not None
    return f"{job.id}\n"
