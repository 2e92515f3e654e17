"""How the jobs benchmark times a drain and a latency run, the same way for every system.

Imported by bench/jobs.py (redline's venv) and by bench/peers/_jobs_peer.py (each Python peer's
own venv), so it uses the standard library only; `client` is any redis-py client.

- A drain of `n` jobs is timed from the moment a fifth of them are done (`WARMUP`) to the
  moment none is left, and its rate is the jobs done in that window over its length: a
  worker's start, and a second process that starts a little after the first, are not counted
  against it (with 20,000 jobs and 40,000 jobs/s the whole drain lasts half a second).
- Latency is enqueue → start: each latency job carries the wall-clock time it was sent, and
  its task RPUSHes ``start - sent`` (seconds) onto `LATENCY_KEY`. The producer offers a fixed
  rate; the first `LATENCY_WARMUP` of the jobs are left out of the percentiles.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

WARMUP = 0.2  # fraction of a drain's jobs done before its clock starts
LATENCY_KEY = "bench:latency"
LATENCY_WARMUP = 0.1  # fraction of a latency run's jobs left out of its percentiles
POLL = 0.005  # seconds between looks at the queue


def wait(predicate: Callable[[], bool], progress: Callable[[], int], stall: float = 30) -> None:
    """Until `predicate()`; a TimeoutError when `progress()` stays the same for `stall` s."""
    seen, since = progress(), time.monotonic()
    while not predicate():
        now, value = time.monotonic(), progress()
        if value != seen:
            seen, since = value, now
        elif now - since > stall:
            raise TimeoutError(f"stalled for {stall:.0f}s with {value} jobs left")
        time.sleep(POLL)


class Polled:
    """`left` counting its calls, and what one call costs the server in commands (measured
    once): the drain's command count less the benchmark's own looks is the system's."""

    def __init__(self, left: Callable[[], int], client: Any) -> None:
        self.left, self.calls = left, 0
        before = command_count(client)
        for _ in range(5):
            left()
        self.cost = (command_count(client) - before - 1) / 5  # less the INFO that measures

    def __call__(self) -> int:
        self.calls += 1
        return self.left()

    @property
    def commands(self) -> float:
        return self.calls * self.cost


def drain_rate(left: Callable[[], int], n: int, stall: float = 30) -> float:
    """Jobs/s of a drain of `n` jobs, `left()` counting those not yet done (see the module
    docstring: timed once a fifth are done, until none is left)."""
    mark = int(n * (1 - WARMUP))
    wait(lambda: left() <= mark, left, stall)
    started, counted = time.perf_counter(), left()
    wait(lambda: left() == 0, left, stall)
    return counted / (time.perf_counter() - started)


def drain_run(
    client: Any,
    left: Callable[[], int],
    enqueue: Callable[[], float],
    start: Callable[[], list[subprocess.Popen[Any]]],
    n: int,
) -> tuple[float, float, float, float]:
    """Enqueue `n` jobs (`enqueue()` gives the seconds it took), start the workers (`start()`),
    time their drain (`drain_rate`) and stop them: jobs/s of the enqueue and of the drain, and
    the server's commands per job of each (the benchmark's own looks at `left` taken out)."""
    polled = Polled(left, client)
    before = command_count(client)
    enqueued = enqueue()
    enqueue_cmds = command_count(client) - before
    workers = start()
    try:
        drain = drain_rate(polled, n)
    finally:
        stop(workers)
    drain_cmds = command_count(client) - before - enqueue_cmds - polled.commands
    return n / enqueued, drain, enqueue_cmds / n, drain_cmds / n


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of `values`, in milliseconds (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no latency was recorded")

    def rank(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return rank(0.50), rank(0.99)


def recorded(client: Any) -> list[float]:
    return [float(v) for v in client.lrange(LATENCY_KEY, 0, -1)]


def latency_run(
    client: Any,
    workers: list[subprocess.Popen[Any]],
    produce: Callable[[int], None],
    n: int,
    stall: float = 30,
) -> tuple[float, float]:
    """(p50, p99) ms of `n` jobs offered by `produce(count)` to `workers` (already started):
    one probe job first, until its start is recorded (the workers are up), then the run."""
    client.delete(LATENCY_KEY)
    produce(1)
    count: Callable[[], int] = lambda: int(client.llen(LATENCY_KEY))  # noqa: E731
    wait(lambda: count() == 1 or any(w.poll() is not None for w in workers), count, 120)
    if any(w.poll() is not None for w in workers):
        raise RuntimeError("a worker exited before its first job")
    client.delete(LATENCY_KEY)
    produce(n)
    wait(lambda: count() >= n, count, stall)
    return percentiles(recorded(client)[int(n * LATENCY_WARMUP) :])


def stop(workers: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM the workers and wait for them (SIGKILL after 30 s)."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def at_rate(send: Callable[[float], object], n: int, rate: float) -> None:
    """Call `send(now)` `n` times at `rate` a second, `now` the wall-clock time of the call
    (behind schedule, the next calls go at once until it is caught up)."""
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(time.time())


def command_count(client: Any) -> int:
    """Commands the server has run (those run inside scripts included: INFO commandstats)."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())
