"""A chord of no-op members: the time from the start of its enqueue to the start of its
callback, redline beside Celery's chord, on one fresh embedded server in the same run.

Each system runs one worker process (redline ``-c 64``; Celery's threads pool, 8 threads, as in
`bench.jobs`), started and warmed up before the enqueue. Celery is installed for the benchmark
only, in its own venv (`bench.jobs`' peers). The systems run `REDLINE_BENCH_ROUNDS` times,
interleaved, each keeping its best.

    python -m bench workflows
    REDLINE_BENCH_MEMBERS=2000 REDLINE_BENCH_ROUNDS=1 python -m bench workflows
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import redis
from rich.console import Console
from rich.table import Table

from bench._jobs_python import HERE, PEER_DIR, _peer_python
from redline.connection import connect_sync
from redline.connection.embedded import EmbeddedServer
from redline.jobs import chord, enqueue_sync, group

MEMBERS = int(os.environ.get("REDLINE_BENCH_MEMBERS", "10000"))
ROUNDS = int(os.environ.get("REDLINE_BENCH_ROUNDS", "2"))
CONCURRENCY = 64


@dataclass
class Result:
    name: str
    enqueue: float = 0.0  # seconds
    callback: float = 0.0  # seconds from the enqueue's start to the callback's start
    note: str = ""


def _wait(predicate: object, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the workflow did not finish in time")
        time.sleep(0.005)


def _worker(url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "redline", "--log-level", "warning", "worker"]
    command += ["bench._workflow_tasks", "--redis", url, "-c", str(CONCURRENCY), "--processes", "1"]
    return subprocess.Popen(
        [*command, "--set", "cron=false"],
        cwd=HERE.parent,
        env={**os.environ, "BENCH_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_redline(url: str, n: int) -> Result:
    from bench._workflow_tasks import callback, noop

    client = connect_sync(url)
    worker = _worker(url)
    try:
        warm = enqueue_sync(client, group(noop.s()))
        warm.result(timeout=120)  # the worker is up and consuming
        started = time.time()
        enqueue_sync(client, chord(group(noop.s(i) for i in range(n)), callback.s()))
        enqueued = time.time() - started
        _wait(lambda: client.exists("bench:wf:callback"))
        at = float(client.get("bench:wf:callback").split()[0])
    finally:
        worker.terminate()
        worker.wait(30)
        client.close()
    return Result(f"redline (-c {CONCURRENCY})", enqueued, at - started)


def run_celery(url: str, n: int) -> Result:
    python = _peer_python("celery")
    if isinstance(python, str):
        return Result("celery", note=python)
    env = {**os.environ, "BENCH_URL": url, "PYTHONPATH": str(PEER_DIR)}
    done = subprocess.run(
        [str(python), str(PEER_DIR / "_workflow_peer.py"), str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Result("celery", note=f"run failed: {(done.stderr or done.stdout).strip()[-200:]}")
    if "error" in found:
        return Result("celery", note=f"{found['error']}: {found.get('stderr', '')[-200:]}")
    return Result("celery (8 threads)", found["enqueue"], found["callback"])


def measure(url: str, name: str, n: int) -> Result:
    redis.Redis.from_url(url).flushall()
    return run_redline(url, n) if name == "redline" else run_celery(url, n)


def table(results: list[Result], n: int) -> Table:
    out = Table(
        title=f"a chord of {n} no-op members: enqueue start -> callback start, one worker "
        f"process each (best of {ROUNDS} interleaved rounds)"
    )
    for column in ("system", "enqueue s", "to callback s", "vs celery"):
        out.add_column(column, justify="left" if column == "system" else "right")
    celery = next((r.callback for r in results if r.name.startswith("celery") and r.callback), 0)
    for r in results:
        if not r.callback:
            out.add_row(r.name, "—", "—", r.note)
            continue
        ratio = f"{celery / r.callback:.2f}x faster" if celery else "—"
        if r.name.startswith("celery"):
            ratio = "baseline"
        out.add_row(r.name, f"{r.enqueue:.3f}", f"{r.callback:.3f}", ratio)
    return out


def main() -> None:
    systems = [s for s in os.environ.get("REDLINE_BENCH_SYSTEMS", "redline,celery").split(",") if s]
    console = Console(width=120)
    best: dict[str, Result] = {}
    with EmbeddedServer(port=None) as server:
        for round_ in range(1, ROUNDS + 1):
            for name in systems:
                console.print(f"workflows: round {round_}/{ROUNDS} {name} …")
                found = measure(server.url, name, MEMBERS)
                kept = best.get(name)
                if kept is None or (found.callback and found.callback < (kept.callback or 1e9)):
                    best[name] = found
    console.print(table(list(best.values()), MEMBERS))
