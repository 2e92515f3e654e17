"""No-op job throughput: enqueue rate, and the drain rate of one worker process.

redline beside RQ, arq, SAQ, Dramatiq and Celery, on one fresh embedded server in the same run.
Each peer is installed for the benchmark only, in its own venv under
``~/.cache/redline/bench-venvs/<peer>`` (their redis-py ranges conflict); a peer that cannot be
installed is reported as such. Every system enqueues one job per call (its ordinary API) and
runs one worker process with its usual concurrency knob; "cmds/job" is the INFO commandstats
delta (commands run inside Lua scripts count too) over enqueue + drain, per job. The systems
run one after another, `REDLINE_BENCH_ROUNDS` times interleaved, and each keeps its best drain,
so that a moment of load on a shared machine does not decide a ratio. Every worker logs at
warning level (arq and RQ log lines per job at their default level). `REDLINE_BENCH_SYSTEMS`
(comma-separated, e.g. `arq` or `redline,dramatiq`) runs only those systems. Where Ruby's
Sidekiq is installed (Debian: ruby-sidekiq), it is a peer too: `sidekiq-c10`, `sidekiq-c25`
and `redline-sidekiq` (`redline worker --sidekiq` on the same Sidekiq-format jobs; see
bench/_jobs_sidekiq.py).

    python -m bench jobs        REDLINE_BENCH_JOBS=20000 REDLINE_BENCH_ROUNDS=3 python -m bench jobs
    REDLINE_BENCH_SYSTEMS=arq REDLINE_BENCH_ROUNDS=1 python -m bench jobs
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from bench import _jobs_sidekiq
from redline.connection import connect, connect_sync
from redline.connection.embedded import EmbeddedServer
from redline.jobs import enqueue, enqueue_sync
from redline.queue import ReliableQueue

HERE = Path(__file__).resolve().parent
# The peers run from their own folder: bench/ holds queue.py, which would shadow the stdlib
# module of that name on their sys.path.
PEER_DIR = HERE / "peers"
JOBS = int(os.environ.get("REDLINE_BENCH_JOBS", "10000"))
ROUNDS = int(os.environ.get("REDLINE_BENCH_ROUNDS", "2"))
VENVS = Path.home() / ".cache" / "redline" / "bench-venvs"
PEERS = {
    "rq": ["rq>=2,<3"],
    "arq": ["arq==0.28.*", "redis<6"],  # arq 0.26 - 0.28 want redis-py < 6
    "saq": ["saq[hiredis]>=0.22,<1", "typing_extensions"],  # saq imports it, undeclared
    "dramatiq": ["dramatiq[redis]>=1.17,<2"],
    "celery": ["celery[redis]>=5.4,<6"],
}
CONCURRENCY = 64
SYSTEMS = [
    name.strip()
    for name in os.environ.get(
        "REDLINE_BENCH_SYSTEMS", ",".join(["redline", *PEERS, *_jobs_sidekiq.available()])
    ).split(",")
    if name.strip()
]


@dataclass
class Result:
    name: str
    enqueue: float = 0.0  # jobs/s
    drain: float = 0.0  # jobs/s
    commands: float = 0.0  # per job
    note: str = ""


def command_count(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _redline_enqueue(url: str, n: int) -> float:
    """Seconds to enqueue `n` jobs with the blocking API (the peers' enqueues are blocking)."""
    from bench._jobs_tasks import noop

    client = connect_sync(url)
    started = time.perf_counter()
    for _ in range(n):
        enqueue_sync(client, noop)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


async def _redline_enqueue_async(url: str, n: int) -> float:
    from bench._jobs_tasks import noop

    client = connect(url)
    started = time.perf_counter()
    for _ in range(n):
        await enqueue(client, noop.options(queue="bench:async"))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return n / elapsed


def _left(url: str) -> int:
    async def read() -> int:
        client = connect(url)
        info = await ReliableQueue(client).info("bench:jobs")
        await client.aclose()
        return info.waiting + info.inflight + info.delayed

    return asyncio.run(read())


def _wait(predicate: object, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("worker did not finish in time")
        time.sleep(0.01)


def run_redline(url: str, n: int) -> Result:
    enqueued = _redline_enqueue(url, n)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redline",
            "--log-level",
            "warning",
            "worker",
            "--processes",  # one process: the row `--processes 2` is a run of its own
            "1",
            "bench._jobs_tasks",
            "--redis",
            url,
            "-c",
            str(CONCURRENCY),
            "--set",
            "cron=false",
        ],
        cwd=HERE.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _left(url) < n)
        first = time.perf_counter()
        _wait(lambda: _left(url) == 0)
        drained = time.perf_counter() - first
    finally:
        worker.terminate()
        worker.wait(30)
    return Result(f"redline (-c {CONCURRENCY})", n / enqueued, n / drained)


def _peer_python(peer: str) -> Path | str:
    """The peer's venv python, made and installed on first use; a string says why it failed.

    The stamp file holds the requirements it was made with: a changed pin makes a new venv.
    """
    home = VENVS / peer
    python = home / "bin" / "python"
    stamp = home / ".installed"
    wanted = "\n".join(PEERS[peer])
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *PEERS[peer], "redis", "hiredis"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        return f"pip install failed: {done.stderr.strip().splitlines()[-1:]}"
    stamp.write_text(wanted)
    return python


def run_peer(peer: str, url: str, n: int) -> Result:
    python = _peer_python(peer)
    if isinstance(python, str):
        return Result(peer, note=python)
    env = {**os.environ, "BENCH_PEER": peer, "BENCH_URL": url, "PYTHONPATH": str(PEER_DIR)}
    done = subprocess.run(
        [str(python), str(PEER_DIR / "_jobs_peer.py"), str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Result(peer, note=f"run failed: {(done.stderr or done.stdout).strip()[-200:]}")
    if "error" in found:
        said = found.get("stderr", "").strip().splitlines()[-1:]
        return Result(peer, note=f"worker {found['error']}{': ' + said[0] if said else ''}")
    version = (
        subprocess.run([str(python), "-m", "pip", "show", peer], capture_output=True, text=True)
        .stdout.split("Version: ")[-1]
        .split()[0]
    )
    label = {
        "dramatiq": "dramatiq (8 threads)",
        "celery": "celery (8 threads)",
        "rq": "rq (SimpleWorker)",
        "arq": f"arq (max_jobs {CONCURRENCY})",
        "saq": "saq (64)",
    }[peer]
    return Result(f"{label} {version}", n / found["enqueue"], n / found["drain"])


def measure(server_url: str, name: str, n: int) -> Result:
    client = redis.Redis.from_url(server_url)
    client.flushall()
    before = command_count(client)
    if name in _jobs_sidekiq.SYSTEMS:
        label, enqueued, drained = _jobs_sidekiq.run(name, server_url, n, CONCURRENCY)
        result = Result(label, n / enqueued, n / drained)
    else:
        result = run_redline(server_url, n) if name == "redline" else run_peer(name, server_url, n)
    if result.drain:
        result.commands = (command_count(client) - before) / n
    client.close()
    return result


def table(results: list[Result], n: int) -> Table:
    peers = (*PEERS, "sidekiq")
    fastest = max((r.drain for r in results if r.name.startswith(peers)), default=0)
    out = Table(
        title=f"no-op jobs: {n} enqueued one per call, drained by one worker process "
        f"(best of {ROUNDS} interleaved rounds)"
    )
    for column in (
        "system",
        "enqueue jobs/s",
        "drain jobs/s",
        "drain vs fastest peer",
        "Redis cmds/job",
    ):
        out.add_column(column, justify="left" if column == "system" else "right")
    for r in results:
        if not r.drain:
            out.add_row(r.name, "—", "—", "—", r.note)
            continue
        ratio = f"{r.drain / fastest:.2f}x" if fastest else "—"
        out.add_row(r.name, f"{r.enqueue:,.0f}", f"{r.drain:,.0f}", ratio, f"{r.commands:.1f}")
    return out


def main() -> None:
    unknown = sorted(set(SYSTEMS) - {"redline", *PEERS, *_jobs_sidekiq.SYSTEMS})
    if unknown:
        raise SystemExit(
            f"REDLINE_BENCH_SYSTEMS: unknown {', '.join(unknown)}; "
            f"choose from redline, {', '.join([*PEERS, *_jobs_sidekiq.SYSTEMS])}"
        )
    console = Console(width=120)
    best: dict[str, Result] = {}
    with EmbeddedServer(port=None) as server:
        for round_ in range(1, ROUNDS + 1):  # rounds interleave the systems; each keeps its best
            for name in SYSTEMS:
                console.print(f"jobs: round {round_}/{ROUNDS} {name} …")
                found = measure(server.url, name, JOBS)
                if name not in best or found.drain > best[name].drain:
                    best[name] = found
        if "redline" in SYSTEMS:
            async_rate = asyncio.run(_redline_enqueue_async(server.url, JOBS // 4))
    console.print(table(list(best.values()), JOBS))
    if "redline" in SYSTEMS:
        console.print(
            f"redline's asyncio enqueue (await enqueue, one per call): {async_rate:,.0f} jobs/s"
        )
