"""Where a drained job's time goes: the server's µs per job, command by command, and the
worker's CPU per job, for ``redline worker`` with one process and with ``--processes 2``.

`REDLINE_BENCH_JOBS` no-op jobs (default 40,000) are put on a flushed server with
`enqueue_many_sync`, then drained. Everything is measured from the moment a fifth of them are
done (as `python -m bench jobs` times a drain) until none is left: the rate, the server's CPU
(INFO cpu), the worker's (its process tree's, from /proc) and INFO commandstats per command
(a script's ``usec`` includes the commands it runs, which are also listed on their own). Each
drain is its own round, `REDLINE_BENCH_ROUNDS` of each (default 2), interleaved; the table
shows the round with the best rate. Comparing two trees: run it with each tree's interpreter
from that tree's root, in turns (it uses only the worker and `enqueue_many_sync`; copy this
file into an older tree's bench/ first).

    python -m bench drain
    REDLINE_BENCH_JOBS=20000 REDLINE_BENCH_ROUNDS=1 python -m bench drain
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from bench import _jobs_tasks
from bench._cpu import server_cpu as _server_cpu
from bench._cpu import tree_cpu as _tree_cpu
from bench._jobs_redline import jobs_left, start_worker
from bench._server import server
from redline.connection import connect_sync
from redline.jobs import enqueue_many_sync

JOBS = int(os.environ.get("REDLINE_BENCH_JOBS", "40000"))
ROUNDS = int(os.environ.get("REDLINE_BENCH_ROUNDS", "2"))
SHOWN = 8  # commands listed per drain, the costliest first
Drain = dict[str, Any]


def _drain(url: str, client: redis.Redis, processes: int) -> Drain:
    client.flushall()
    enqueue_many_sync(connect_sync(url), _jobs_tasks.noop, [((), {})] * JOBS)
    left, worker = jobs_left(client), start_worker(url, processes)
    try:
        while left() > JOBS * 0.8:
            time.sleep(0.002)
        client.config_resetstat()
        counted, server_cpu, worker_cpu = left(), _server_cpu(client), _tree_cpu(worker.pid)
        started = time.perf_counter()
        while left() > 0:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        worker_cpu = _tree_cpu(worker.pid) - worker_cpu
        stats: dict[str, dict[str, float]] = client.info("commandstats")
        server_cpu = _server_cpu(client) - server_cpu
    finally:
        worker.terminate()
        worker.wait(30)
    per_job = {name.removeprefix("cmdstat_"): s["usec"] / counted for name, s in stats.items()}
    calls = {name.removeprefix("cmdstat_"): s["calls"] / counted for name, s in stats.items()}
    return {
        "rate": counted / elapsed,
        "server": server_cpu / counted * 1e6,
        "worker": worker_cpu / counted * 1e6,
        "usec": per_job,
        "calls": calls,
    }


def _table(processes: int, best: Drain) -> Table:
    title = (
        f"drain, {'--processes 2' if processes > 1 else 'one process'}: {best['rate']:,.0f} "
        f"jobs/s; CPU per job: server {best['server']:.1f} µs, worker {best['worker']:.1f} µs"
    )
    table = Table(title=title)
    for column in ("command", "calls per job", "server µs per job"):
        table.add_column(column, justify="left" if column == "command" else "right")
    costliest = sorted(best["usec"].items(), key=lambda item: -item[1])[:SHOWN]
    for name, usec in costliest:
        table.add_row(name, f"{best['calls'][name]:.3f}", f"{usec:.2f}")
    return table


def main() -> None:
    drains: dict[int, list[Drain]] = {1: [], 2: []}
    with server() as url:
        client = redis.Redis.from_url(url)
        for _ in range(ROUNDS):
            for processes, found in drains.items():
                found.append(_drain(url, client, processes))
        client.close()
    for processes, found in drains.items():
        Console().print(_table(processes, max(found, key=lambda d: d["rate"])))
