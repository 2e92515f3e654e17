"""Replicas SIGKILLed, alone and under load: every request answered 2xx, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from redline.connection import connect
from redline.queue import QueueInfo, ReliableQueue
from tests.conftest import needs_tool
from tests.helpers import spawn, stop, wait_for
from tests.http.web import WEBSITE, Wrk, fresh_db, live_pids, topology
from tests.servers import ServerProcess, free_port

pytestmark = pytest.mark.timeout(240)

APP = """
import asyncio, os
from redline.http import handler

@handler(r"GET /who")
async def who(request):
    if os.environ.get("HANG_FOREVER"):
        await asyncio.sleep(3600)
    return str(os.getpid())
"""


class Stack:
    """Services started one process each, so that the test can kill any of them."""

    def __init__(self, url: str, here: Path) -> None:
        self.url, self.here = url, here
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.port = free_port()

    def start(
        self, name: str, kind: str, env: dict[str, str] | None = None, **config: object
    ) -> None:
        file = self.here / f"{name}.json"
        file.write_text(json.dumps({"popTimeout": 0.5, "serviceNamespace": "res", **config}))
        self.procs[name] = spawn(
            kind,
            "--config",
            str(file),
            "--redis",
            self.url,
            log=self.here / f"{name}.log",
            env=env,
            cwd=self.here,
        )

    def log(self, name: str) -> str:
        return (self.here / f"{name}.log").read_text()

    def close(self) -> None:
        for proc in self.procs.values():
            stop(proc)


@pytest.fixture
def stack(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The stack with its himporter ("front"); its request timeout is 5 s unless the test
    says otherwise (``@pytest.mark.parametrize("stack", [seconds], indirect=True)``)."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "1k.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "app.py").write_text(APP)
    made = Stack(redis_url, tmp_path)
    timeout = getattr(request, "param", 5)
    made.start("front", "himporter", out="res:http", port=made.port, timeout=timeout)
    yield made
    made.close()


def info(url: str, key: str) -> QueueInfo:
    async def get() -> QueueInfo:
        client = connect(url)
        try:
            return await ReliableQueue(client).info(key)
        finally:
            await client.aclose()

    return asyncio.run(get())


def settled(url: str, key: str) -> bool:
    now = info(url, key)
    return now.waiting == now.inflight == now.delayed == now.dead == 0


# The survivor starts after the request is taken: Python's start-up on a loaded machine must
# not eat the request's deadline, or the answer is a (correct) 504 rather than the redelivery.
@pytest.mark.parametrize("stack", [30], indirect=True)
def test_a_killed_handlers_request_is_redelivered_to_the_survivor(stack: Stack) -> None:
    routes = [{"path": "/.*", "queue": "res:app"}]
    stack.start("router", "hrouter", **{"in": "res:http", "routes": routes})
    stack.start(
        "hangs", "handler", env={"HANG_FOREVER": "1"}, module="app.py", lease=1, **{"in": "res:app"}
    )
    site = f"http://127.0.0.1:{stack.port}"
    wait_for(lambda: _status(f"{site}/nothing") == 404, 30)  # the handler answers
    answer: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answer.append(httpx.get(f"{site}/who", timeout=40)))
    waiting.start()
    wait_for(lambda: info(stack.url, "res:app").inflight >= 1, timeout=10)
    stack.start("survivor", "handler", module="app.py", lease=1, **{"in": "res:app"})
    stack.procs["hangs"].send_signal(signal.SIGKILL)
    waiting.join(40)
    assert answer and answer[0].status_code == 200, stack.log("front")[-2000:]
    assert answer[0].text == str(stack.procs["survivor"].pid)
    assert "redelivered" in stack.log("survivor")
    wait_for(lambda: settled(stack.url, "res:app"), timeout=10)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def _website(here: Path) -> Path:
    """The example website (two replicas of every handler service; hassets, autoscaled there,
    kept at two), its hello handler working 20 ms per request (so that its replicas always
    hold requests when killed)."""
    site = here / "website"
    shutil.copytree(WEBSITE.parent, site)
    config = site / "redline.toml"
    text = re.sub(
        r"\[services.hassets\]\nautoscale = .*\n",
        "[services.hassets]\nreplicas = 2\n",
        config.read_text(),
    )
    config.write_text(text)
    handlers = site / "handlers.py"
    handlers.write_text(
        handlers.read_text()
        .replace("from redline.http", "import asyncio\n\nfrom redline.http")
        .replace("    return {", "    await asyncio.sleep(0.02)\n    return {")
    )
    return site / "redline.toml"


SERVICES = ("hassets", "hrender", "hrouter", "hello")
PATHS = ("/style.css", "/articles/1", "/", "/api/articles", "/hello/ann")


# Alone: wrk drives the chain at full speed while replicas are killed.
@pytest.mark.slow
@pytest.mark.alone
@needs_tool("wrk", "wrk")
def test_killing_any_handler_replica_under_load_costs_no_error(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The example website (himporter timeout 5 s) under wrk at 32 connections; one registered
    replica of each handler service SIGKILLed in turn while its sibling serves, caught holding
    requests, until a kill of each has landed on work in hand (the survivors count
    redeliveries after it; at most four kills each). Answers must keep coming after every
    kill; wrk sees only 2xx answers and no socket error or timeout; at the end every queue is
    settled (nothing lost, nothing left in flight)."""
    url, port = fresh_db(server, 91), free_port()
    client = redis.Redis.from_url(url)
    config = _website(tmp_path)
    with topology(config, url, port, tmp_path / "up.log", ("/", "/api/articles", "/hello/x")):
        for service in SERVICES:
            wait_for(lambda s=service: len(_replicas(client, s)) >= 2, timeout=60)  # type: ignore[misc]
        load = Wrk(f"http://127.0.0.1:{port}", PATHS, tmp_path, connections=32)
        hits = dict.fromkeys(SERVICES, 0)
        try:
            for service in SERVICES:  # a quick service may be between batches: kill again
                for _ in range(4):
                    if not hits[service]:
                        hits[service] += _kill_one(client, url, service)
        finally:
            result = load.stop()
        print(result.summary, hits)  # shown with pytest -s
        assert result.failed == 0 and result.broken == 0 and result.ok > 0, result.summary
        assert all(hits.values()), f"a service's kills never hit work in hand: {hits}"
        for queue in ("website:http", "website:assets", "website:render", "website:hello"):
            wait_for(lambda q=queue: settled(url, q), timeout=30)  # type: ignore[misc]


QUEUES = {
    "hassets": "website:assets",
    "hrender": "website:render",
    "hrouter": "website:http",
    "hello": "website:hello",
}


def _kill_one(client: redis.Redis, url: str, service: str) -> bool:
    """SIGKILL the oldest of the service's two registered replicas (after the replacement of
    the last victim has registered), caught holding work: frozen with SIGSTOP, it is killed
    once a delivery of its queue has stayed in flight for 0.25 s (the sibling acks its own
    within milliseconds), else let go and tried again. True when a survivor then redelivered
    what the victim held. Also waits for 50 answers after the kill."""
    victim = wait_for(lambda: _replicas(client, service)[1:] and _replicas(client, service)[-1], 90)
    for _ in range(50):
        os.kill(victim, signal.SIGSTOP)
        time.sleep(0.3)
        if _held(url, QUEUES[service], 0.25):
            break
        os.kill(victim, signal.SIGCONT)
        time.sleep(0.1)
    redelivered = _count(client, f"website:{service}", "redelivered")
    answered = _count(client, "website:himporter", "response")
    os.kill(victim, signal.SIGKILL)
    hit = _within(15, lambda: _count(client, f"website:{service}", "redelivered") > redelivered)
    wait_for(lambda: _count(client, "website:himporter", "response") >= answered + 50, 60)
    return hit


def _held(url: str, key: str, seconds: float) -> bool:
    """Whether a delivery of queue `key` has been in flight for `seconds` or more."""

    async def get() -> bool:
        client = connect(url)
        try:
            pending = await ReliableQueue(client).inspect(key, pending=True, count=1000)
        finally:
            await client.aclose()
        return any(m.elapsed is not None and m.elapsed >= seconds for m in pending)

    return asyncio.run(get())


def _replicas(client: redis.Redis, service: str) -> list[int]:
    return live_pids(client, f"website:{service}")


def _count(client: redis.Redis, ns: str, metric: str) -> int:
    return int(client.hget(f"{ns}:metrics:{metric}", "count") or 0)


def _within(seconds: float, predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


TWO_IMPORTERS = """
[defaults]
serviceNamespace = "ti"
popTimeout = 0.5

[services.himporter]
replicas = 2
out = "ti:http"

[services.hrouter]
in = "ti:http"
routes = [{ path = "/(?P<path>.*)", queue = "ti:assets" }]

[services.hassets]
in = "ti:assets"
root = "www"
"""


@pytest.mark.slow
def test_two_importers_on_one_port_survive_the_loss_of_one(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Two himporter replicas share the port: SIGKILL one, and new connections are all
    answered by the other; `redline up` starts a replacement, which registers."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("hello\n")
    (tmp_path / "up.toml").write_text(TWO_IMPORTERS)
    url, port = fresh_db(server, 93), free_port()
    client = redis.Redis.from_url(url)
    with topology(tmp_path / "up.toml", url, port, tmp_path / "up.log", ("/a.txt",)):
        importers = wait_for(lambda: (p := live_pids(client, "ti:himporter"))[1:] and p, 60)
        os.kill(importers[-1], signal.SIGKILL)
        wait_for(lambda: importers[-1] not in live_pids(client, "ti:himporter"), timeout=30)
        for _ in range(30):  # each a new connection: only the live listener gets them
            response = httpx.get(f"http://127.0.0.1:{port}/a.txt", timeout=10)
            assert (response.status_code, response.text) == (200, "hello\n")
        wait_for(lambda: len(live_pids(client, "ti:himporter")) == 2, timeout=60)
    assert "exited code=-9; restart in" in (tmp_path / "up.log").read_text()
