"""Celery's side of the workflows benchmark, run by Celery's own venv python (not redline's).

    BENCH_URL=<redis-url> python _workflow_peer.py <members>

Starts one Celery worker (threads pool, 8), waits until it answers, enqueues a chord of
<members> no-op tasks and a callback (Redis as broker and result backend, which a chord
needs), and prints JSON {"enqueue": seconds, "callback": seconds} on its last line: the
callback is timed from the start of the enqueue to the callback's start (it writes the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chord

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

app = Celery("benchwf", broker=URL, backend=URL)


@app.task(name="noop")
def noop(*_: Any) -> None:
    return None


@app.task(name="callback")
def callback(results: list[Any]) -> int:
    redis.Redis.from_url(URL).set("bench:wf:callback", f"{time.time()!r} {len(results)}")
    return len(results)


def wait(predicate: Any, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the Celery worker did not finish in time")
        time.sleep(0.005)


def main(n: int) -> None:
    r = redis.Redis.from_url(URL)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    command = ["celery", "-A", "_workflow_peer:app", "worker", "--pool", "threads"]
    command += ["--concurrency", "8", "--without-gossip", "--without-mingle", "-l", "warning"]
    with tempfile.TemporaryFile("w+") as log:
        worker = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]], cwd=HERE, env=env, stdout=log, stderr=log
        )
        try:
            noop.delay().get(timeout=120)  # the worker is up and consuming
            started = time.time()
            chord(noop.s(i) for i in range(n))(callback.s())
            enqueued = time.time() - started
            wait(lambda: r.exists("bench:wf:callback"))
            at = float(r.get("bench:wf:callback").split()[0])
            found = {"enqueue": enqueued, "callback": at - started}
        except Exception as exc:
            log.seek(0)
            found = {"error": repr(exc), "stderr": log.read()[-2000:]}
        finally:
            worker.terminate()
            worker.wait(30)
    print(json.dumps(found))


if __name__ == "__main__":
    main(int(sys.argv[1]))
