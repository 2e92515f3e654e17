"""himporter's limits end to end (real processes under `redline up`): 413, 431, 504, 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from redline.queue import SyncReliableQueue
from tests.helpers import wait_for
from tests.http.web import fresh_db, topology
from tests.servers import ServerProcess, free_port

pytestmark = pytest.mark.timeout(180)

APP = """
import asyncio
from redline.http import handler

@handler(r"GET /ok")
def ok(request):
    return "ok"

@handler(r"POST /echo")
def echo(request):
    return bytes(request.body)

@handler(r"GET /never")
async def never(request):
    await asyncio.sleep(3600)
"""

TOPOLOGY = """
[defaults]
popTimeout = 0.5
serviceNamespace = "lim"

[services.himporter]
out = "lim:http"
timeout = 8
maxBody = 1000
maxHeader = 2000
maxConcurrency = 2
retryAfter = 3

[services.hrouter]
in = "lim:http"
routes = [{ path = "/.*", queue = "lim:app" }]

[services.app]
kind = "handler"
in = "lim:app"
module = "app.py"
"""


@pytest.fixture(scope="module")
def limited(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, redis.Redis]]:
    here = tmp_path_factory.mktemp("limits")
    (here / "app.py").write_text(APP)
    (here / "up.toml").write_text(TOPOLOGY)
    port, url = free_port(), fresh_db(server, 91)
    with topology(here / "up.toml", url, port, here / "up.log", ("/ok",)):
        client = redis.Redis.from_url(url)
        yield f"http://127.0.0.1:{port}", client
        client.close()


def test_body_over_the_limit_is_413(limited: tuple[str, redis.Redis]) -> None:
    site, _ = limited
    fits = httpx.post(f"{site}/echo", content=b"\x00\xff" * 500)
    assert fits.status_code == 200 and fits.content == b"\x00\xff" * 500
    assert httpx.post(f"{site}/echo", content=b"x" * 1001).status_code == 413


def test_headers_over_the_limit_are_431(limited: tuple[str, redis.Redis]) -> None:
    site, _ = limited
    assert httpx.get(f"{site}/ok", headers={"x-big": "y" * 3000}).status_code == 431


def test_no_answer_is_504_and_counted(limited: tuple[str, redis.Redis]) -> None:
    site, client = limited
    assert httpx.get(f"{site}/never", timeout=30).status_code == 504
    metric = "lim:himporter:metrics:timeout"
    wait_for(lambda: int(client.hget(metric, "count") or 0) >= 1, timeout=10)
    answered = client.hgetall("lim:himporter:metrics:response")
    assert int(answered[b"count"]) >= 1 and b"histo10" in answered  # /ok, /echo
    assert client.exists("lim:himporter:ids") and client.exists("lim:app:ids")  # registered


def test_past_the_concurrency_limit_is_503_with_retry_after(
    limited: tuple[str, redis.Redis],
) -> None:
    site, client = limited
    statuses: list[int] = []

    def hang() -> None:
        statuses.append(httpx.get(f"{site}/never", timeout=30).status_code)

    hanging = [threading.Thread(target=hang) for _ in range(2)]
    for thread in hanging:
        thread.start()
    # Both slots are taken once the handler holds both requests; then /ok must be refused.
    queue = SyncReliableQueue(client)
    wait_for(lambda: queue.info("lim:app").inflight == 2, timeout=7, interval=0.02)
    refused = wait_for(lambda: _refused(site), timeout=7, interval=0.02)
    assert refused.headers["retry-after"] == "3"
    for thread in hanging:
        thread.join()
    assert statuses == [504, 504]
    assert httpx.get(f"{site}/ok").status_code == 200  # slots are free again


def _refused(site: str) -> httpx.Response | None:
    response = httpx.get(f"{site}/ok")
    return response if response.status_code == 503 else None


def test_topology_errors_exit_2(tmp_path: Path) -> None:
    from tests.helpers import run

    bad = tmp_path / "bad.toml"
    bad.write_text('[services.hrouter]\nin = "q"\nroutes = [{ path = "(" }]\ncolour = 1\n')
    done = run("up", str(bad))
    assert done.returncode == 2
    assert "services.hrouter.routes.0.path" in done.stderr
    assert "services.hrouter.routes.0.queue" in done.stderr
    assert "colour" in done.stderr
