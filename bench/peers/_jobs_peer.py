"""One peer's side of the jobs benchmark, run by that peer's own venv python (not redline's).

    BENCH_PEER=<peer> BENCH_URL=<redis-url> python _jobs_peer.py <jobs>

Enqueues <jobs> no-op jobs one call at a time, starts one worker process of the peer, and
prints JSON {"enqueue": seconds, "drain": seconds} on its last line. The drain is timed from
the worker's first take to the last job done. Also imported as a module by the peer's worker.
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

PEER = os.environ.get("BENCH_PEER", "")
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def noop(*args: Any) -> None:
    return None


async def anoop(ctx: Any, *args: Any) -> None:
    return None


if PEER == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=URL))
    dnoop = dramatiq.actor(noop, actor_name="noop")
if PEER == "celery":
    from celery import Celery

    celery_app = Celery("bench", broker=URL)
    celery_app.conf.task_ignore_result = True
    cnoop = celery_app.task(noop, name="noop")
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


def wait(predicate: Any, progress: Any, stall: float = 30) -> None:
    """Until `predicate()`; a TimeoutError when `progress()` stays the same for `stall` s."""
    seen, since = progress(), time.monotonic()
    while not predicate():
        now, value = time.monotonic(), progress()
        if value != seen:
            seen, since = value, now
        elif now - since > stall:
            raise TimeoutError(f"stalled for {stall:.0f}s with {value} jobs left")
        time.sleep(0.01)


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
        ["dramatiq", "_jobs_peer", "--processes", "1", "--threads", "8"],
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
            "threads",
            "--concurrency",
            "8",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        celery_left,
    ),
}


def main(n: int) -> None:
    enqueue, command, left = PEERS[PEER]
    r = redis_client()
    started = time.perf_counter()
    enqueue(n)
    enqueued = time.perf_counter() - started
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    # The worker's stderr goes to a file: a pipe nobody reads while the jobs drain blocks a
    # worker that logs per job once 64 KiB are written (arq did, after ~450 jobs).
    with tempfile.TemporaryFile("w+") as log:
        worker = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]],
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        found: dict[str, Any]
        try:
            wait(lambda: left(r) < n or worker.poll() is not None, lambda: left(r))
            first = time.perf_counter()
            wait(lambda: left(r) == 0, lambda: left(r))
            found = {"enqueue": enqueued, "drain": time.perf_counter() - first}
        except TimeoutError as exc:
            found = {"error": str(exc)}
        finally:
            worker.terminate()
            worker.wait(60)
        log.seek(0)
        found["stderr"] = log.read()[-300:]
    print(json.dumps(found))


if __name__ == "__main__":
    main(int(sys.argv[1]))
