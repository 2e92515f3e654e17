"""Replicas SIGKILLed under load: every request answered (2xx or a clean 5xx), nothing lost."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from redline.connection import connect
from redline.queue import QueueInfo, ReliableQueue
from tests.helpers import spawn, stop, wait_for
from tests.http.web import answers
from tests.servers import free_port

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

WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; failed = 0; other = 0 end
function response(status, headers, body)
  if status < 400 then ok = ok + 1 elseif status >= 500 then failed = failed + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local o, f, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); f = f + t:get("failed"); x = x + t:get("other")
  end
  local e = summary.errors
  io.write(string.format("STATUS ok=%d failed=%d other=%d\\n", o, f, x))
  io.write(string.format("SOCKET connect=%d read=%d write=%d timeout=%d\\n",
    e.connect, e.read, e.write, e.timeout))
end
"""


class Stack:
    """Services started one process each, so that the test can kill any of them."""

    def __init__(self, url: str, here: Path) -> None:
        self.url, self.here, self.procs = url, here, {}  # type: dict[str, subprocess.Popen[str]]
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


def test_steady_load_while_killing_an_assets_then_a_router_replica(stack: Stack) -> None:
    routes = [{"path": "/(?P<path>.*)", "queue": "res:assets"}]
    for name in ("router0", "router1"):
        stack.start(name, "hrouter", lease=1, **{"in": "res:http", "routes": routes})
    for name in ("assets0", "assets1"):
        stack.start(name, "hassets", root="www", lease=1, **{"in": "res:assets"})
    url = f"http://127.0.0.1:{stack.port}/1k.bin"
    wait_for(lambda: answers(url), timeout=30)
    kills = threading.Thread(target=_kill_during_load, args=(stack,))
    kills.start()
    ok, failed, other, hung = _load(url, seconds=20, deadline=5, here=stack.here)
    kills.join()
    print(f"load: ok={ok} 5xx={failed} other={other} hung={hung}")  # shown with pytest -s
    assert other == 0 and hung == 0, (ok, failed, other, hung)
    assert ok > 100, (ok, failed)
    for key in ("res:http", "res:assets"):
        wait_for(lambda k=key: settled(stack.url, k), timeout=15)  # type: ignore[misc]


def _kill_during_load(stack: Stack) -> None:
    time.sleep(6)  # load runs meanwhile; the kills are scheduled, not synchronised on
    stack.procs["assets0"].send_signal(signal.SIGKILL)
    time.sleep(6)
    stack.procs["router0"].send_signal(signal.SIGKILL)


def _load(url: str, seconds: int, deadline: int, here: Path) -> tuple[int, int, int, int]:
    """(2xx/3xx, 5xx, other statuses, requests that hung past the deadline or broke)."""
    if shutil.which("wrk") is None:
        return _python_load(url, seconds, deadline)
    script = here / "status.lua"
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c20",
            f"-d{seconds}s",
            f"--timeout={deadline + 3}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    status = re.search(r"STATUS ok=(\d+) failed=(\d+) other=(\d+)", done.stdout)
    sock = re.search(r"SOCKET connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+)", done.stdout)
    assert status and sock, done.stdout + done.stderr
    ok, failed, other = (int(g) for g in status.groups())
    return ok, failed, other, sum(int(g) for g in sock.groups())


def _python_load(url: str, seconds: int, deadline: int) -> tuple[int, int, int, int]:
    counts = {"ok": 0, "failed": 0, "other": 0, "hung": 0}
    until = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=deadline + 3) as client:
            while time.monotonic() < until:
                try:
                    code = client.get(url).status_code
                except httpx.HTTPError:
                    counts["hung"] += 1
                    continue
                kind = "ok" if code < 400 else "failed" if code >= 500 else "other"
                counts[kind] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["ok"], counts["failed"], counts["other"], counts["hung"]
