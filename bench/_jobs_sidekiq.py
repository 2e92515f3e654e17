"""Sidekiq in the jobs benchmark (where Debian's ruby-sidekiq is installed): Ruby's Sidekiq
draining no-op jobs with one process at concurrency 10 and 25, and `redline worker --sidekiq`
draining the same Sidekiq-format jobs.

Sidekiq's jobs are enqueued by Ruby (``NoopWorker.perform_async``, one per call); redline's by
``enqueue_sidekiq_sync`` (one per call). Sidekiq's BRPOP leaves nothing to count of a job being
run, so its drain ends when the queue is empty (its last few no-op jobs may still be running);
redline's when its in-flight lists are empty too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench._jobs_result import Result
from bench.peers import _timing
from redline.connection import connect_sync
from redline.jobs.sidekiq import enqueue_sidekiq_sync
from redline.jobs.sidekiq.fetch import INFLIGHT

HERE = Path(__file__).resolve().parent
RUBY = HERE / "peers" / "sidekiq_noop.rb"
QUEUE = "queue:bench"
SYSTEMS = ("sidekiq-c10", "sidekiq-c25", "redline-sidekiq")
MISSING = "needs ruby and sidekiq on PATH (Debian: apt-get install ruby-sidekiq)"


def available() -> bool:
    return bool(shutil.which("sidekiq") and shutil.which("ruby"))


def version() -> str:
    done = subprocess.run(
        ["ruby", "-e", 'require "sidekiq"; print Sidekiq::VERSION'], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def _left(client: redis.Redis) -> int:
    inflight = sum(int(client.llen(key)) for key in client.scan_iter(f"{INFLIGHT}:*"))
    return int(client.llen(QUEUE)) + inflight


def _worker(name: str, url: str) -> subprocess.Popen[bytes]:
    if name == "redline-sidekiq":
        command = [
            sys.executable, "-m", "redline", "--log-level", "warning", "worker", "--processes", "1",
            "bench._jobs_sidekiq_tasks", "--sidekiq", "bench", "--redis", url, "-c", "64",
        ]  # fmt: skip
    else:
        command = ["sidekiq", "-r", str(RUBY), "-c", name.removeprefix("sidekiq-c"), "-q", "bench"]
    return subprocess.Popen(
        command,
        cwd=HERE.parent,
        env={**os.environ, "REDIS_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _enqueue(name: str, url: str, n: int) -> float:
    """Seconds to enqueue `n` no-op jobs one per call."""
    if name != "redline-sidekiq":
        done = subprocess.run(
            ["ruby", str(RUBY), str(n)],
            capture_output=True,
            text=True,
            env={**os.environ, "REDIS_URL": url},
        )
        if done.returncode != 0:
            raise RuntimeError(f"sidekiq enqueue failed: {done.stderr.strip()[-200:]}")
        return float(done.stdout.strip().splitlines()[-1])
    client = connect_sync(url)
    started = time.perf_counter()
    for _ in range(n):
        enqueue_sidekiq_sync(client, "NoopWorker", queue="bench")
    client.close()
    return time.perf_counter() - started


def run(name: str, url: str, n: int) -> Result:
    if not available():
        return Result(name, note=MISSING)
    client = redis.Redis.from_url(url)
    try:
        measured = _timing.drain_run(
            client,
            lambda: _left(client),
            lambda: _enqueue(name, url, n),
            lambda: [_worker(name, url)],
            n,
        )
    finally:
        client.close()
    label = f"sidekiq {version()} (-c {name.removeprefix('sidekiq-c')})"
    label = "redline --sidekiq (-c 64)" if name == "redline-sidekiq" else label
    return Result(label, n, *measured)


def latency(name: str, url: str, n: int, rate: float) -> tuple[float, float] | str:
    if not available():
        return MISSING
    if name == "redline-sidekiq":
        return "not measured (the redline rows measure redline)"
    client = redis.Redis.from_url(url)
    worker = _worker(name, url)

    def produce(count: int) -> None:
        command = ["ruby", str(RUBY), "latency", str(count), repr(rate)]
        subprocess.run(
            command, env={**os.environ, "REDIS_URL": url}, check=True, capture_output=True
        )

    try:
        return _timing.latency_run(client, [worker], produce, n)
    finally:
        _timing.stop([worker])
        client.close()
