"""One peer's side of the jobs benchmark, run by that peer's own venv python (not redline's).

    BENCH_PEER=<peer> BENCH_URL=<redis-url> python _jobs_peer.py drain <jobs>
    BENCH_PEER=<peer> BENCH_URL=<redis-url> python _jobs_peer.py latency <jobs> <rate>

`drain` enqueues <jobs> no-op jobs one call at a time, starts the peer's worker (each at its
best: Dramatiq with 2 processes, Celery prefork with 2), and prints JSON on its last line:
{"enqueue": seconds, "drain": jobs/s, "enqueue_cmds": n, "drain_cmds": n} (the drain timed as
_timing.py says; the commands from INFO commandstats). `latency` starts the worker, offers
<jobs> latency jobs at <rate> a second and prints {"p50": ms, "p99": ms}. Also imported as a
module by the peer's worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _timing

PEER = os.environ.get("BENCH_PEER", "")
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def noop(*args: Any) -> None:
    return None


async def anoop(ctx: Any, *args: Any) -> None:
    return None


_recorder: Any = None


def latency(sent: float) -> None:
    """A latency job: records how long after `sent` it started (see _timing.py)."""
    global _recorder
    started = time.time()
    _recorder = _recorder or redis_client()
    _recorder.rpush(_timing.LATENCY_KEY, started - sent)


if PEER == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=URL))
    dnoop = dramatiq.actor(noop, actor_name="noop")
    dlatency = dramatiq.actor(latency, actor_name="latency")
if PEER == "celery":
    from celery import Celery

    celery_app = Celery("bench", broker=URL)
    celery_app.conf.task_ignore_result = True
    cnoop = celery_app.task(noop, name="noop")
    clatency = celery_app.task(latency, name="latency")
if PEER == "arq":
    from arq.connections import RedisSettings

    class ArqSettings:
        functions = [anoop]
        redis_settings = RedisSettings.from_dsn(URL)
        burst = True
        max_jobs = 64  # its concurrency knob, set like redline's -c and SAQ's concurrency
        keep_result = 0

    # arq's --custom-log-dict: warnings only, as the other workers run (its default logs two
    # INFO lines per job).
    arq_log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
        "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
    }


if PEER == "saq":
    from saq import Queue as SaqQueue

    saq_settings = {"queue": SaqQueue.from_url(URL), "functions": [anoop], "concurrency": 64}


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(URL)


# -- per peer: enqueue n, the worker command, "started" and "done" checks ---------------------


def rq_enqueue(n: int) -> None:
    import _jobs_peer
    from rq import Queue

    queue = Queue("bench", connection=redis_client())
    for _ in range(n):
        queue.enqueue(_jobs_peer.noop)


def rq_left(r: Any) -> int:
    return int(r.llen("rq:queue:bench")) + int(r.zcard("rq:wip:bench"))


async def _arq_enqueue(n: int) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(URL))
    for _ in range(n):
        await pool.enqueue_job("anoop")
    await pool.aclose()


def arq_left(r: Any) -> int:
    # arq keeps a job in its queue sorted set until the job is finished, running ones included.
    return int(r.zcard("arq:queue"))


async def _saq_enqueue(n: int) -> None:
    queue = SaqQueue.from_url(URL)
    for _ in range(n):
        await queue.enqueue("anoop")
    await queue.disconnect()


def saq_left(r: Any) -> int:
    async def count() -> int:
        queue = SaqQueue.from_url(URL)
        found = await queue.count("incomplete")
        await queue.disconnect()
        return int(found)

    return asyncio.run(count())


def dramatiq_enqueue(n: int) -> None:
    for _ in range(n):
        dnoop.send()


def dramatiq_left(r: Any) -> int:
    return int(r.hlen("dramatiq:default.msgs"))


def celery_enqueue(n: int) -> None:
    for _ in range(n):
        cnoop.delay()


def celery_left(r: Any) -> int:
    return int(r.llen("celery")) + int(r.hlen("unacked"))


PEERS: dict[str, tuple[Any, list[str], Any]] = {
    "rq": (
        rq_enqueue,
        [
            "rq",
            "worker",
            "bench",
            "--url",
            URL,
            "--burst",
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--quiet",
        ],
        rq_left,
    ),
    "arq": (
        lambda n: asyncio.run(_arq_enqueue(n)),
        ["arq", "_jobs_peer.ArqSettings", "--custom-log-dict", "_jobs_peer.arq_log_config"],
        arq_left,
    ),
    "saq": (lambda n: asyncio.run(_saq_enqueue(n)), ["saq", "_jobs_peer.saq_settings"], saq_left),
    "dramatiq": (
        dramatiq_enqueue,
        ["dramatiq", "_jobs_peer", "--processes", "2", "--threads", "8"],
        dramatiq_left,
    ),
    "celery": (
        celery_enqueue,
        [
            "celery",
            "-A",
            "_jobs_peer:celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        celery_left,
    ),
}


# The peers whose latency is measured, and how each sends one latency job.
SENDERS: dict[str, Any] = {
    "dramatiq": lambda sent: dlatency.send(sent),
    "celery": lambda sent: clatency.delay(sent),
}


def start_worker(log: Any) -> subprocess.Popen[str]:
    """The peer's worker. Its stderr goes to `log`, a file: a pipe nobody reads while the jobs
    drain blocks a worker that logs per job once 64 KiB are written (arq did, after ~450 jobs)."""
    command = PEERS[PEER][1]
    return subprocess.Popen(
        [str(BIN / command[0]), *command[1:]],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )


def drain(n: int) -> dict[str, Any]:
    enqueue, _, left = PEERS[PEER]
    r = redis_client()
    polled = _timing.Polled(lambda: left(r), r)
    before = _timing.command_count(r)
    started = time.perf_counter()
    enqueue(n)
    found: dict[str, Any] = {"enqueue": time.perf_counter() - started}
    found["enqueue_cmds"] = _timing.command_count(r) - before
    with tempfile.TemporaryFile("w+") as log:
        worker = start_worker(log)
        try:
            found["drain"] = _timing.drain_rate(polled, n)
            spent = _timing.command_count(r) - before - found["enqueue_cmds"]
            found["drain_cmds"] = spent - polled.commands
        except TimeoutError as exc:
            found = {"error": str(exc)}
        finally:
            _timing.stop([worker])
        log.seek(0)
        found["stderr"] = log.read()[-300:]
    return found


def latency_run(n: int, rate: float) -> dict[str, Any]:
    send = SENDERS[PEER]
    with tempfile.TemporaryFile("w+") as log:
        worker = start_worker(log)
        try:
            produce = lambda count: _timing.at_rate(send, count, rate)  # noqa: E731
            p50, p99 = _timing.latency_run(redis_client(), [worker], produce, n)
            found: dict[str, Any] = {"p50": p50, "p99": p99}
        except (TimeoutError, RuntimeError) as exc:
            found = {"error": str(exc)}
        finally:
            _timing.stop([worker])
        log.seek(0)
        found["stderr"] = log.read()[-300:]
    return found


if __name__ == "__main__":
    mode, jobs = sys.argv[1], int(sys.argv[2])
    result = drain(jobs) if mode == "drain" else latency_run(jobs, float(sys.argv[3]))
    print(json.dumps(result))
