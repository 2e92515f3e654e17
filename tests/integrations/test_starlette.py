"""The Starlette/FastAPI integration: the example FastAPI app under uvicorn with a real worker,
driven with httpx; and the lifespan's and the dependency's errors, in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from redline.errors import JobError
from redline.integrations.starlette import Redline, enqueuer
from redline.jobs import job_keys
from redline.testing import Jobs
from tests.helpers import spawn, stop, wait_for
from tests.integrations import plugin_tasks as pt
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def job_state(base: str, job_id: str, wanted: str) -> dict[str, Any] | None:
    reply = get(f"{base}/jobs/{job_id}")
    if reply is None or reply.status_code != 200 or reply.json()["state"] != wanted:
        return None
    found: dict[str, Any] = reply.json()
    return found


def test_the_example_app_enqueues_and_a_real_worker_runs_the_jobs(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_log = tmp_path / "app.log"
    with open(app_log, "w") as out:
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_signup.app:app",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env={**os.environ, "REDIS_URL": redis_url},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    worker = spawn(
        "worker",
        "examples.fastapi_signup.tasks",
        "--redis",
        redis_url,
        log=tmp_path / "worker.log",
        cwd=REPO,
    )
    try:
        wait_for(lambda: get(f"{base}/openapi.json"), timeout=60)
        ann = httpx.post(f"{base}/signup", params={"email": "ann@example.com"}, timeout=10)
        nobody = httpx.post(f"{base}/signup", params={"email": "nobody"}, timeout=10)
        assert (ann.status_code, nobody.status_code) == (202, 202)
        done = wait_for(lambda: job_state(base, ann.json()["job"], "complete"), timeout=60)
        assert done == {"state": "complete", "result": "welcome, ann@example.com", "error": ""}
        dead = wait_for(lambda: job_state(base, nobody.json()["job"], "dead"), timeout=60)
        assert dead["error"] == "ValueError: not an e-mail address: 'nobody'"
        assert httpx.get(f"{base}/jobs/nonesuch", timeout=10).status_code == 404
    finally:
        app_code = stop(app, timeout=30)
        worker_code = stop(worker, timeout=30)
    # uvicorn re-raises SIGTERM once shut down: the lifespan's end is what shows a clean stop.
    assert app_code in (0, -signal.SIGTERM), app_log.read_text()[-3000:]
    assert "Application shutdown complete." in app_log.read_text()
    assert worker_code == 0, (tmp_path / "worker.log").read_text()[-3000:]


async def test_a_plain_starlette_app_enqueues_through_its_lifespan(
    redline_url: str, redline_jobs: Jobs
) -> None:
    async def order(request: Request) -> JSONResponse:
        enqueue = enqueuer(request)
        job = await enqueue(pt.double, redline_url, 4)
        await enqueue.in_(3600, pt.double, redline_url, 5)
        await enqueue.at(time.time() + 7200, pt.double, redline_url, 6)
        return JSONResponse({"job": job.id if job else None})

    app = Starlette(routes=[Route("/", order, methods=["POST"])])
    lifespan = Redline(redline_url).lifespan(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        with pytest.raises(JobError, match="redline is not open in this app: give it lifespan="):
            await http.post("/")  # no lifespan yet
        async with lifespan:
            reply = await http.post("/")
        assert app.state.redline is None  # closed with the app
    doc = redline_jobs.assert_enqueued(pt.double, redline_url, 4)
    assert reply.json() == {"job": doc.id}
    later = redline_jobs.client.zrange(job_keys("p:jobs").scheduled, 0, -1)
    assert [json.loads(d)["args"][1] for d in later] == [5, 6]  # in an hour, in two


async def test_the_lifespan_fails_at_start_up_when_the_server_does_not_answer() -> None:
    app = Starlette()
    with pytest.raises(Exception, match=r"Connection refused|connecting"):
        async with Redline(f"redis://127.0.0.1:{free_port()}/0").lifespan(app):
            pass
