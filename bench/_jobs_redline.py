"""What the jobs benchmarks share about redline's own worker: the queue they drain, how a
`redline worker` is started for them, and how many jobs are left (bench/jobs.py,
bench/_jobs_features.py, bench/drain.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from redline.jobs.priority import priority_key
from redline.queue import SyncReliableQueue

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 64
QUEUE = "bench:jobs"


def jobs_left(client: redis.Redis) -> Callable[[], int]:
    """Jobs not yet done: waiting, in flight or delayed (`info`, whatever the queue's keys)."""
    queue = SyncReliableQueue(client)

    def left() -> int:  # the queue, and the list of priority 5 (`redline-priority`)
        infos = [queue.info(QUEUE), queue.info(priority_key(QUEUE, 5))]
        return sum(i.waiting + i.inflight + i.delayed for i in infos)

    return left


def start_worker(
    url: str, processes: int, module: str = "bench._jobs_tasks"
) -> subprocess.Popen[bytes]:
    """``redline worker MODULE -c CONCURRENCY --processes N`` on `url`, logging warnings only."""
    command = [
        sys.executable, "-m", "redline", "--log-level", "warning", "worker", module,
        "--redis", url, "-c", str(CONCURRENCY), "--set", "cron=false",
        "--processes", str(processes),  # always given: without it, a worker takes every core
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "BENCH_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
