"""No-op jobs: the enqueue rate (one job per call), the drain rate of each system at its best,
and the latency from enqueue to start at a fixed offered rate.

Every system runs on one fresh embedded server in the same run, one after another, in
`REDLINE_BENCH_ROUNDS` interleaved rounds; each keeps its best drain, so that a moment of load
on a shared machine does not decide a ratio. The feature rows (issue 20) are also given as the
median of each round's own ratio to plain redline (the two drains seconds apart).

- redline: one worker process (``redline worker -c 64``) and ``--processes 2``; its enqueue is
  the blocking ``enqueue_sync`` (the peers' are blocking too), with ``await enqueue`` (one
  call after another) on asyncio's own loop and on uvloop printed under the table, each with
  its ratio to Sidekiq's push in the same run.
- Python peers, each installed for the benchmark only in its own venv under
  ``~/.cache/redline/bench-venvs/<peer>`` (their redis-py ranges conflict): Dramatiq with 2
  processes, Celery prefork with 2, RQ, arq, SAQ (bench/peers/_jobs_peer.py).
- BullMQ for Node, installed by npm in ``~/.cache/redline/bench-node``: one Worker at
  concurrency 32 and 100, and two processes at 100 (bench/_jobs_bullmq.py).
- Ruby's Sidekiq where Debian's ruby-sidekiq is installed: one process at ``-c 10`` and
  ``-c 25``, and ``redline worker --sidekiq`` on the same Sidekiq-format jobs
  (bench/_jobs_sidekiq.py).

A system that cannot run here is listed with the reason. A drain is timed once a fifth of its
jobs are done until none is left (bench/peers/_timing.py); "cmds/job" are the INFO
commandstats deltas (commands run inside scripts included) of the enqueue and of the drain
(less the commands of the benchmark's own looks at the queue),
per job. The latency table offers `LATENCY_RATE` jobs/s to each system that drains faster
than that, and gives p50 and p99 of enqueue → start. Every worker logs at warning level.
`REDLINE_BENCH_SYSTEMS` (comma-separated) runs only those systems; `REDLINE_BENCH_JOBS` sets
the jobs per drain (a fifth of it for RQ, arq and SAQ, which are slow). `redline-priority`,
`redline-rate` and `redline-cap` drain the same no-ops with one of issue 20's features on (a
priority, a rate limit far above the drain rate, a concurrency cap of 64) against plain
`redline`, in a table of their own measured so that it resolves 15 %: long drains, paired
rounds in rotating order, the median of the paired ratios with their spread, and each drain's
worker and server CPU per job (bench/_jobs_features.py says how; `REDLINE_BENCH_FEATURE_JOBS`
and `REDLINE_BENCH_FEATURE_ROUNDS` set its size).

    python -m bench jobs        REDLINE_BENCH_JOBS=40000 REDLINE_BENCH_ROUNDS=3 python -m bench jobs
    REDLINE_BENCH_SYSTEMS=redline,redline-p2,bullmq-c100 python -m bench jobs
    REDLINE_BENCH_SYSTEMS=redline-priority,redline-rate,redline-cap \\
        REDLINE_BENCH_FEATURE_JOBS=200000 REDLINE_BENCH_FEATURE_ROUNDS=9 python -m bench jobs
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from bench import _jobs_bullmq, _jobs_features, _jobs_python, _jobs_sidekiq
from bench._jobs_redline import CONCURRENCY, jobs_left, start_worker
from bench._jobs_result import Result
from bench.peers import _timing
from redline.connection import connect, connect_sync
from redline.connection.embedded import EmbeddedServer
from redline.jobs import enqueue, enqueue_sync

JOBS = int(os.environ.get("REDLINE_BENCH_JOBS", "20000"))
ROUNDS = int(os.environ.get("REDLINE_BENCH_ROUNDS", "2"))
LATENCY_JOBS = int(os.environ.get("REDLINE_BENCH_LATENCY_JOBS", "5000"))
LATENCY_RATE = 1000.0  # jobs/s offered in the latency runs
REDLINE = ("redline", "redline-p2", *_jobs_features.FEATURES)
SYSTEMS = [
    name.strip()
    for name in os.environ.get(
        "REDLINE_BENCH_SYSTEMS",
        ",".join([*REDLINE, *_jobs_bullmq.SYSTEMS, *_jobs_python.SYSTEMS, *_jobs_sidekiq.SYSTEMS]),
    ).split(",")
    if name.strip()
]


def _redline_enqueue(url: str, n: int) -> float:
    """Seconds to enqueue `n` jobs with the blocking API (the peers' enqueues are blocking)."""
    from bench._jobs_tasks import noop

    client, task = connect_sync(url), noop
    started = time.perf_counter()
    for _ in range(n):
        enqueue_sync(client, task)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


async def _redline_enqueue_async(url: str, n: int) -> float:
    from bench._jobs_tasks import noop

    client, task = connect(url), noop.options(queue="bench:async")
    started = time.perf_counter()
    for _ in range(n):
        await enqueue(client, task)
    elapsed = time.perf_counter() - started
    await client.aclose()
    return n / elapsed


def _async_enqueues(url: str) -> dict[str, float]:
    """jobs/s of ``await enqueue``, one call after another, on asyncio's own loop and on
    uvloop (what the worker and uvicorn run on when it is installed): best of `ROUNDS`,
    interleaved."""
    loops: dict[str, Callable[[Any], float]] = {"asyncio": asyncio.run}
    try:
        import uvloop

        loops["uvloop"] = uvloop.run
    except ImportError:  # the dev extra installs it; a bare install may not have it
        pass
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, run in loops.items():
            redis.Redis.from_url(url).flushall()
            rate = run(_redline_enqueue_async(url, JOBS // 4))
            best[name] = max(best.get(name, 0.0), rate)
    return best


def _print_async(console: Console, rates: dict[str, float], best: dict[str, Result]) -> None:
    """The asyncio enqueue rates, with their ratio to Sidekiq's push in this run: the faster
    of its runs (each Sidekiq row measures `Client.push` again; the concurrency is the
    worker's, so both are the same push at its best)."""
    pushes = [best[n].enqueue for n in ("sidekiq-c10", "sidekiq-c25") if n in best]
    push = max(pushes, default=0.0)
    for loop, rate in rates.items():
        ratio = f" ({rate / push:.2f}x Sidekiq's push)" if push else ""
        console.print(
            f"redline's asyncio enqueue (await enqueue, one per call, {loop} loop): "
            f"{rate:,.0f} jobs/s{ratio}"
        )


def run_redline(name: str, url: str, n: int) -> Result:
    processes = 2 if name == "redline-p2" else 1
    client = redis.Redis.from_url(url)
    try:
        measured = _timing.drain_run(
            client,
            jobs_left(client),
            lambda: _redline_enqueue(url, n),
            lambda: [start_worker(url, processes)],
            n,
        )
    finally:
        client.close()
    label = f"redline (-c {CONCURRENCY}{', --processes 2' if processes > 1 else ''})"
    return Result(label, n, *measured)


def latency_redline(name: str, url: str, n: int) -> tuple[float, float]:
    from bench._jobs_tasks import latency

    client = connect_sync(url)
    worker = start_worker(url, 2 if name == "redline-p2" else 1)
    try:
        produce: Callable[[int], None] = lambda count: _timing.at_rate(  # noqa: E731
            lambda sent: enqueue_sync(client, latency, sent), count, LATENCY_RATE
        )
        return _timing.latency_run(client, [worker], produce, n)
    finally:
        _timing.stop([worker])
        client.close()


def measure(url: str, name: str, n: int) -> Result:
    redis.Redis.from_url(url).flushall()
    if name in _jobs_sidekiq.SYSTEMS:
        return _jobs_sidekiq.run(name, url, n)
    if name in _jobs_bullmq.SYSTEMS:
        return _jobs_bullmq.run(name, url, n)
    if name in _jobs_python.SYSTEMS:
        return _jobs_python.run(name, url, n)
    return run_redline(name, url, n)


def latency(url: str, name: str, n: int) -> tuple[float, float] | str:
    """(p50, p99) ms of `name` at LATENCY_RATE, or why it was not measured."""
    redis.Redis.from_url(url).flushall()
    try:
        if name in _jobs_sidekiq.SYSTEMS:
            return _jobs_sidekiq.latency(name, url, n, LATENCY_RATE)
        if name in _jobs_bullmq.SYSTEMS:
            return _jobs_bullmq.latency(name, url, n, LATENCY_RATE)
        if name in _jobs_python.SYSTEMS:
            return _jobs_python.latency(name, url, n, LATENCY_RATE)
        return latency_redline(name, url, n)
    except (TimeoutError, RuntimeError, ValueError) as exc:
        return f"failed: {exc}"


def drain_table(results: list[Result]) -> Table:
    fastest = max((r.drain for r in results if not r.name.startswith("redline")), default=0)
    out = Table(
        title=f"no-op jobs enqueued one per call, then drained (best of {ROUNDS} interleaved "
        "rounds; drain timed once a fifth are done)"
    )
    columns = ("system", "jobs", "enqueue jobs/s", "drain jobs/s", "drain vs fastest peer")
    for column in (*columns, "cmds/job enqueue + drain"):
        out.add_column(column, justify="left" if column == "system" else "right")
    for r in results:
        if not r.drain:
            out.add_row(r.name, "—", "—", "—", "—", r.note)
            continue
        ratio = f"{r.drain / fastest:.2f}x" if fastest else "—"
        commands = f"{r.enqueue_cmds:.1f} + {r.drain_cmds:.1f}"
        row = (f"{r.jobs:,}", f"{r.enqueue:,.0f}", f"{r.drain:,.0f}", ratio, commands)
        out.add_row(r.name, *row)
    return out


def latency_table(rows: dict[str, tuple[float, float] | str]) -> Table:
    out = Table(
        title=f"enqueue → start latency at {LATENCY_RATE:,.0f} jobs/s offered "
        f"({LATENCY_JOBS:,} jobs, the first tenth left out)"
    )
    for column in ("system", "p50 ms", "p99 ms"):
        out.add_column(column, justify="left" if column == "system" else "right")
    for name, found in rows.items():
        if isinstance(found, str):
            out.add_row(name, "—", found)
        else:
            out.add_row(name, f"{found[0]:.2f}", f"{found[1]:.2f}")
    return out


def _drains(url: str, console: Console) -> dict[str, Result]:
    """Each system's best round (the feature rows are measured apart: `_features`)."""
    best: dict[str, Result] = {}
    systems = [name for name in SYSTEMS if name not in _jobs_features.FEATURES]
    for round_ in range(1, ROUNDS + 1):  # rounds interleave the systems; each keeps its best
        for name in systems:
            console.print(f"jobs: round {round_}/{ROUNDS} {name} …")
            n = JOBS // 5 if name in _jobs_python.SLOW else JOBS
            found = measure(url, name, n)
            if name not in best or found.drain > best[name].drain:
                best[name] = found
    return best


def _features(url: str, console: Console) -> Table | None:
    """The table of issue 20's feature rows, when any is among `SYSTEMS`."""
    if not set(SYSTEMS) & set(_jobs_features.FEATURES):
        return None
    before = _jobs_features.load_average()
    found = _jobs_features.rounds(url, SYSTEMS, console)
    after = _jobs_features.load_average()
    return _jobs_features.table(found, f"{before} at the start, {after} at the end")


def _latencies(url: str, best: dict[str, Result], console: Console) -> dict[str, Any]:
    rows: dict[str, tuple[float, float] | str] = {}
    for name in SYSTEMS:
        if name in _jobs_features.FEATURES:  # drain rows only
            continue
        label = best[name].name
        if best[name].note:
            rows[label] = best[name].note
            continue
        if best[name].drain < 1.2 * LATENCY_RATE:
            rows[label] = f"not measured: drains under {1.2 * LATENCY_RATE:,.0f} jobs/s"
            continue
        console.print(f"jobs: latency {name} …")
        rows[label] = latency(url, name, LATENCY_JOBS)
    return rows


def main() -> None:
    known = [*REDLINE, *_jobs_bullmq.SYSTEMS, *_jobs_python.SYSTEMS, *_jobs_sidekiq.SYSTEMS]
    unknown = sorted(set(SYSTEMS) - set(known))
    if unknown:
        raise SystemExit(
            f"REDLINE_BENCH_SYSTEMS: unknown {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    console = Console(width=130)
    with EmbeddedServer(port=None) as server:
        best = _drains(server.url, console)
        rows = _latencies(server.url, best, console)
        async_rates = _async_enqueues(server.url) if "redline" in SYSTEMS else {}
        features = _features(server.url, console)
    if best:
        console.print(drain_table(list(best.values())))
        _print_async(console, async_rates, best)
        console.print(latency_table(rows))
    if features:
        console.print(features)
