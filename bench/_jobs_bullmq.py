"""BullMQ for Node in the jobs benchmark: installed by npm for the benchmark only in
``~/.cache/redline/bench-node`` (where node and npm are on PATH), run by
bench/peers/bullmq_noop.cjs: one Worker at concurrency 32 and 100, and two Worker processes at
100. Jobs are added one `queue.add` per call; completed ones are removed (BullMQ at its
fastest, and like redline, which keeps nothing of a completed job that keeps no result)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import redis

from bench._install import install_once
from bench._jobs_result import Result
from bench.peers import _timing

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "peers" / "bullmq_noop.cjs"
HOME = Path.home() / ".cache" / "redline" / "bench-node"
PACKAGES = ["bullmq@^5", "ioredis@^5"]
SYSTEMS = ("bullmq-c32", "bullmq-c100", "bullmq-p2")
SHAPES = {"bullmq-c32": (1, 32), "bullmq-c100": (1, 100), "bullmq-p2": (2, 100)}


def install() -> str | None:
    """Installs bullmq and ioredis on first use; None when ready, else why they cannot be."""
    if not (shutil.which("node") and shutil.which("npm")):
        return "needs node and npm on PATH (Debian: apt-get install nodejs npm)"
    command = ["npm", "install", "--prefix", str(HOME), "--no-audit", "--no-fund", *PACKAGES]
    prepare = functools.partial(HOME.mkdir, parents=True, exist_ok=True)
    return install_once(HOME / ".installed", " ".join(PACKAGES), command, prepare, "npm install")


def version() -> str:
    found = HOME / "node_modules" / "bullmq" / "package.json"
    return str(json.loads(found.read_text()).get("version", "?")) if found.exists() else "?"


def _node(*args: str) -> list[str]:
    return ["node", str(SCRIPT), *args]


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": url, "NODE_PATH": str(HOME / "node_modules")}


def _workers(url: str, name: str) -> list[subprocess.Popen[bytes]]:
    processes, concurrency = SHAPES[name]
    return [
        subprocess.Popen(
            _node("work", str(concurrency)),
            env=_env(url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]


def _left(client: redis.Redis) -> int:
    pipe = client.pipeline(transaction=False)
    for name in ("wait", "active", "paused"):
        pipe.llen(f"bull:bench:{name}")
    for name in ("prioritized", "delayed"):
        pipe.zcard(f"bull:bench:{name}")
    return sum(int(n) for n in pipe.execute())


def _label(name: str) -> str:
    processes, concurrency = SHAPES[name]
    shape = f"{processes} processes, " if processes > 1 else ""
    return f"bullmq {version()} ({shape}concurrency {concurrency})"


def _enqueue(url: str, n: int) -> float:
    """Seconds to add `n` no-op jobs one `queue.add` per call."""
    done = subprocess.run(
        _node("enqueue", str(n)), env=_env(url), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"enqueue failed: {done.stderr.strip()[-200:]}")
    return float(done.stdout.strip().splitlines()[-1])


def run(name: str, url: str, n: int) -> Result:
    why = install()
    if why is not None:
        return Result(name, note=why)
    client = redis.Redis.from_url(url)
    try:
        measured = _timing.drain_run(
            client, lambda: _left(client), lambda: _enqueue(url, n), lambda: _workers(url, name), n
        )
    except RuntimeError as exc:
        return Result(name, note=str(exc))
    except TimeoutError as exc:
        return Result(name, note=f"drain {exc}")
    finally:
        client.close()
    return Result(_label(name), n, *measured)


def latency(name: str, url: str, n: int, rate: float) -> tuple[float, float] | str:
    why = install()
    if why is not None:
        return why
    client = redis.Redis.from_url(url)
    workers = _workers(url, name)

    def produce(count: int) -> None:
        command = _node("latency", str(count), repr(rate))
        subprocess.run(command, env=_env(url), check=True, capture_output=True, timeout=600)

    try:
        return _timing.latency_run(client, workers, produce, n)
    finally:
        _timing.stop(workers)
        client.close()
