"""Sidekiq in the jobs benchmark (where Debian's ruby-sidekiq is installed): Ruby's Sidekiq
draining no-op jobs with one process at concurrency 10 and 25, and `redline worker --sidekiq`
draining the same Sidekiq-format jobs.

Sidekiq's jobs are enqueued by Ruby (``NoopWorker.perform_async``, one per call); redline's by
``enqueue_sidekiq_sync`` (one per call). A Sidekiq drain is timed from its first take to an
empty queue (BRPOP leaves nothing else to count: its last few no-op jobs may still be running);
redline's until its in-flight lists are empty too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from redline.connection import connect_sync
from redline.jobs.sidekiq import enqueue_sidekiq_sync
from redline.jobs.sidekiq.fetch import INFLIGHT

HERE = Path(__file__).resolve().parent
RUBY = HERE / "peers" / "sidekiq_noop.rb"
QUEUE = "queue:bench"
SYSTEMS = ("sidekiq-c10", "sidekiq-c25", "redline-sidekiq")


def available() -> list[str]:
    """The Sidekiq systems this machine can run ([] without `sidekiq` on PATH)."""
    return list(SYSTEMS) if shutil.which("sidekiq") and shutil.which("ruby") else []


def version() -> str:
    done = subprocess.run(
        ["ruby", "-e", 'require "sidekiq"; print Sidekiq::VERSION'], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def _left(client: redis.Redis) -> int:
    inflight = sum(int(client.llen(key)) for key in client.scan_iter(f"{INFLIGHT}:*"))
    return int(client.llen(QUEUE)) + inflight


def _drain(url: str, command: list[str], n: int, env: dict[str, str]) -> float:
    client = redis.Redis.from_url(url)
    worker = subprocess.Popen(
        command, cwd=HERE.parent, env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(lambda: _left(client) < n)
        first = time.perf_counter()
        _wait(lambda: _left(client) == 0)
        return time.perf_counter() - first
    finally:
        worker.terminate()
        worker.wait(30)
        client.close()


def _wait(predicate: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("worker did not finish in time")
        time.sleep(0.01)


def run_sidekiq(url: str, n: int, concurrency: int) -> tuple[str, float, float]:
    """(label, enqueue seconds, drain seconds) of Ruby's Sidekiq."""
    env = {"REDIS_URL": url}
    done = subprocess.run(
        ["ruby", str(RUBY), str(n)], capture_output=True, text=True, env={**os.environ, **env}
    )
    if done.returncode != 0:
        raise RuntimeError(f"sidekiq enqueue failed: {done.stderr.strip()[-200:]}")
    enqueued = float(done.stdout.strip().splitlines()[-1])
    command = ["sidekiq", "-r", str(RUBY), "-c", str(concurrency), "-q", "bench"]
    return f"sidekiq {version()} (-c {concurrency})", enqueued, _drain(url, command, n, env)


def run_redline(url: str, n: int, concurrency: int) -> tuple[str, float, float]:
    """(label, enqueue seconds, drain seconds) of `redline worker --sidekiq`."""
    client = connect_sync(url)
    started = time.perf_counter()
    for _ in range(n):
        enqueue_sidekiq_sync(client, "NoopWorker", queue="bench")
    enqueued = time.perf_counter() - started
    client.close()
    command = [
        sys.executable, "-m", "redline", "--log-level", "warning", "worker", "--processes", "1",
        "bench._jobs_sidekiq_tasks", "--sidekiq", "bench", "--redis", url, "-c", str(concurrency),
    ]  # fmt: skip
    return f"redline --sidekiq (-c {concurrency})", enqueued, _drain(url, command, n, {})


def run(name: str, url: str, n: int, concurrency: int) -> tuple[str, float, float]:
    if name == "redline-sidekiq":
        return run_redline(url, n, concurrency)
    return run_sidekiq(url, n, int(name.removeprefix("sidekiq-c")))
