"""Bulk enqueue and job events: what each costs the one server core, beside the client's rate.

- ``enqueue_many`` (blocking and asyncio) of `REDLINE_BENCH_JOBS` no-op jobs (default 50,000)
  on a flushed server: jobs/s (wall, client included) and the server's µs per job in the
  script (INFO commandstats, the script's own time: the commands it runs are inside it).
- The events of a drained job, `job_events.lua` alone (no worker, so no worker's CPU in it):
  a `started` then a `completed` (deleting the status) for each of 250 jobs, written as a
  worker writes them — in two flushes (started with one step, completed with a later one) and
  in one (a fast job: both in the same flush) — server µs per job.

Each figure is the best of `REDLINE_BENCH_ROUNDS` rounds (default 5), so that a moment of load
on a shared machine does not decide it. Set ``REDLINE_BENCH_URL`` to measure against a server of
your own (it is flushed). Comparing two trees: run this module with each tree's interpreter, in
turns (it uses only `enqueue_many`, `enqueue_many_sync` and the worker's event batches).

    python -m bench bulk        REDLINE_BENCH_JOBS=20000 REDLINE_BENCH_ROUNDS=3 python -m bench bulk
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import redis
from rich.console import Console
from rich.table import Table

from bench import _jobs_tasks
from bench._server import server
from redline.connection import connect, connect_sync
from redline.jobs import enqueue_many, enqueue_many_sync, job_keys
from redline.jobs import events as job_events
from redline.scripting.scripts import run_sync

JOBS = int(os.environ.get("REDLINE_BENCH_JOBS", "50000"))
ROUNDS = int(os.environ.get("REDLINE_BENCH_ROUNDS", "5"))
DRAINED = 250  # jobs whose events one round writes
QUEUE = _jobs_tasks.noop.queue
Row = tuple[float, float]  # (jobs/s, server µs per job)


def _script_usec(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval"))


def _timed(client: redis.Redis, run: Callable[[], object], jobs: int) -> Row:
    client.flushall()
    client.config_resetstat()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    return jobs / elapsed, _script_usec(client) / jobs


def _enqueues(url: str, client: redis.Redis) -> dict[str, Row]:
    calls = [((), {})] * JOBS
    blocking = connect_sync(url)

    async def asyncio_run() -> None:
        aclient = connect(url)
        await enqueue_many(aclient, _jobs_tasks.noop, calls)
        await aclient.aclose()

    return {
        "enqueue_many (blocking)": _timed(
            client, lambda: enqueue_many_sync(blocking, _jobs_tasks.noop, calls), JOBS
        ),
        "enqueue_many (asyncio)": _timed(client, lambda: asyncio.run(asyncio_run()), JOBS),
    }


def _flushes(apart: bool) -> list[list[job_events.Pending]]:
    ids = [os.urandom(16).hex() for _ in range(DRAINED)]
    task = _jobs_tasks.noop.name

    def event(job: str, name: str, state: str, ttl: int) -> job_events.Pending:
        return job_events.Pending(QUEUE, job, name, state, 1, task, "", "", ttl)

    started = [event(j, "started", "running", job_events.LIVE_TTL) for j in ids]
    completed = [event(j, "completed", "complete", 0) for j in ids]
    if apart:
        return [started, completed]
    return [[e for pair in zip(started, completed, strict=True) for e in pair]]


def _events(client: redis.Redis, apart: bool) -> Row:
    """Server µs per job for a drained job's events (statuses made first, as an enqueue does)."""
    flushes = _flushes(apart)
    client.flushall()
    keys = job_keys(QUEUE)
    for pending in flushes[0][:: 1 if apart else 2]:
        client.hset(keys.status(pending.job), mapping={"state": "waiting", "enqueued_at": 1})
    client.config_resetstat()
    for flush in flushes:
        run_sync(client, "job_events", *job_events._call(QUEUE, flush))
    return 0.0, _script_usec(client) / DRAINED


def _best(rows: list[dict[str, Row]]) -> dict[str, Row]:
    return {
        name: (max(r[name][0] for r in rows), min(r[name][1] for r in rows)) for name in rows[0]
    }


def main() -> None:
    rounds: list[dict[str, Row]] = []
    with server() as url:
        client = redis.Redis.from_url(url)
        for _ in range(ROUNDS):
            found = _enqueues(url, client)
            found["drained job: events in two flushes"] = _events(client, apart=True)
            found["drained job: events in one flush"] = _events(client, apart=False)
            rounds.append(found)
        client.close()
    table = Table(title=f"bulk enqueue and job events (best of {ROUNDS} rounds, {JOBS:,} jobs)")
    for column in ("what", "jobs/s", "server µs per job"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, (rate, usec) in _best(rounds).items():
        table.add_row(name, f"{rate:,.0f}" if rate else "—", f"{usec:.2f}")
    Console().print(table)
