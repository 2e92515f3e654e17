"""Issue 20's feature rows of `python -m bench jobs`: the drain of one ``redline worker -c 64``
with a priority, a rate limit far above the drain rate, or a concurrency cap of 64 on, against
the same drain of plain no-ops — each asked to be within 15 % of plain.

A drain of 20,000 jobs lasts about a second, and a hiccup of the VM moves it by more than
15 %; so these rows are measured on their own, in a way made to resolve that:

- **Long drains**: `REDLINE_BENCH_FEATURE_JOBS` jobs per drain (default 60,000: a few seconds
  each), put on the flushed server with `enqueue_many_sync` (the enqueue is not what these rows
  measure), then drained by a fresh worker that loads the row's task alone (`worker_tasks`);
  timed, as every drain of the benchmark, from a fifth done until none is left.
- **Paired rounds in rotating order**: `REDLINE_BENCH_FEATURE_ROUNDS` rounds (default 5), each
  drains plain and every feature once, the order rotated by one each round, so that no row is
  always first or last after the same neighbour. A row's figure is the **median of its
  rounds' own ratios to plain** (the two drains seconds apart), printed with the lowest and
  highest of them: a spread wider than the question means the run does not answer it.
- **Counted beside timed**: for every drain, the worker process's CPU per job (/proc) and the
  server's (INFO cpu), over the same window. On a two-core machine the one worker process is
  the bound (the server has the other core), so its CPU per job is the drain's cost that the
  machine's load moves least; "worker CPU vs plain" is plain's CPU per job over the row's
  (the drain rate it implies if the worker stays the bound), again a median of paired ratios.

The check of the method is the priority row: it adds no work (unlimited jobs are not judged),
so it must read about 1.00x with a tight spread. The long form, for a decision:
``REDLINE_BENCH_FEATURE_JOBS=200000 REDLINE_BENCH_FEATURE_ROUNDS=9``.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

import redis
from rich.console import Console
from rich.table import Table

from bench import _jobs_feature_tasks, _jobs_tasks
from bench._cpu import server_cpu, tree_cpu
from bench._jobs_redline import CONCURRENCY, jobs_left, start_worker
from bench.peers import _timing
from redline.connection import connect_sync
from redline.jobs import enqueue_many_sync

JOBS = int(os.environ.get("REDLINE_BENCH_FEATURE_JOBS", "60000"))
ROUNDS = int(os.environ.get("REDLINE_BENCH_FEATURE_ROUNDS", "5"))
POLL = 0.01  # seconds between looks at the queue: 1 % of a 1-second window at most
PLAIN = "redline"
TASKS = {
    PLAIN: _jobs_tasks.noop,
    "redline-priority": _jobs_feature_tasks.noop_priority,
    "redline-rate": _jobs_feature_tasks.noop_rated,
    "redline-cap": _jobs_feature_tasks.noop_capped,
}
FEATURES = [name for name in TASKS if name != PLAIN]


@dataclass
class Drain:
    """One drain's window (a fifth done → empty): jobs/s, and µs of CPU per job."""

    rate: float
    worker: float
    server: float
    busy: float  # the worker's CPU over the window's wall time


def _window(client: redis.Redis, pid: int, n: int) -> Drain:
    left = jobs_left(client)
    _timing.wait(lambda: left() <= n * (1 - _timing.WARMUP), left)
    counted, worker, server = left(), tree_cpu(pid), server_cpu(client)
    started = time.perf_counter()
    while left() > 0:
        time.sleep(POLL)
    wall = time.perf_counter() - started
    worker, server = tree_cpu(pid) - worker, server_cpu(client) - server
    return Drain(counted / wall, worker / counted * 1e6, server / counted * 1e6, worker / wall)


def worker_tasks(name: str) -> str:
    """The tasks row `name`'s worker loads (`redline worker`'s MODULE or MODULE:ATTR): plain's
    module, or the row's own task alone, so that each row's worker differs from plain's by
    its one feature. (A rate or cap worker that also declared the priority row's task popped
    that priority's empty list before its own on every batch: one more round trip per pop.)"""
    if name == PLAIN:
        return "bench._jobs_tasks"
    module, _, attr = TASKS[name].name.rpartition(".")  # a task's default name: module.function
    return f"{module}:{attr}"


def drain(url: str, name: str, n: int = JOBS) -> Drain:
    """`n` jobs of row `name` put on the flushed server, then drained by a fresh worker."""
    client = redis.Redis.from_url(url)
    client.flushall()
    enqueuer = connect_sync(url)
    enqueue_many_sync(enqueuer, TASKS[name], [((), {})] * n)
    enqueuer.close()
    worker = start_worker(url, 1, worker_tasks(name))
    try:
        return _window(client, worker.pid, n)
    finally:
        _timing.stop([worker])
        client.close()


def rounds(url: str, names: list[str], console: Console) -> dict[str, list[Drain]]:
    """Every row's drains, round by round, plain first in the list (the order of each round
    rotated by one)."""
    rows = [PLAIN, *[name for name in FEATURES if name in names]]
    found: dict[str, list[Drain]] = {name: [] for name in rows}
    for round_ in range(ROUNDS):
        order = rows[round_ % len(rows) :] + rows[: round_ % len(rows)]
        for name in order:
            console.print(f"jobs: features round {round_ + 1}/{ROUNDS} {name} ({JOBS:,} jobs) …")
            found[name].append(drain(url, name))
    return found


def _paired(row: list[Drain], plain: list[Drain], of: str) -> list[float]:
    """Each round's ratio of the row to plain: jobs/s over plain's, or for CPU plain's µs per
    job over the row's (both >1 when the row is the faster)."""
    if of == "rate":
        return sorted(r.rate / p.rate for r, p in zip(row, plain, strict=True))
    return sorted(p.worker / r.worker for r, p in zip(row, plain, strict=True))


def _spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f} to {ratios[-1]:.2f})"


def table(found: dict[str, list[Drain]], load: str) -> Table:
    out = Table(
        title=f"issue 20's features against plain redline (-c {CONCURRENCY}, one process): "
        f"{JOBS:,} jobs per drain, {ROUNDS} rounds in rotating order; medians, and the median "
        f"of the rounds' paired ratios (lowest to highest); load average {load}"
    )
    columns = ("system", "drain jobs/s", "drain vs plain", "worker CPU µs/job")
    for column in (*columns, "worker CPU vs plain", "server CPU µs/job", "worker busy"):
        out.add_column(column, justify="left" if column == "system" else "right")
    plain = found[PLAIN]
    for name, drains in found.items():
        med = {f: statistics.median(getattr(d, f) for d in drains) for f in Drain.__annotations__}
        vs_rate = _spread(_paired(drains, plain, "rate")) if name != PLAIN else "—"
        vs_cpu = _spread(_paired(drains, plain, "cpu")) if name != PLAIN else "—"
        out.add_row(
            name, f"{med['rate']:,.0f}", vs_rate, f"{med['worker']:.1f}", vs_cpu,
            f"{med['server']:.1f}", f"{med['busy']:.2f}",
        )  # fmt: skip
    return out


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())
