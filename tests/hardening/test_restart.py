"""The Redis server SIGKILLed and restarted (AOF, appendfsync always) under load.

Producers (acknowledged pushes only), an mpush process, a consumer and a jobs worker run through
it; nothing a producer was told was stored is lost, every job runs, and mpush and the worker
reconnect by themselves, logging each backoff step once (not a line per failed attempt).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.jobs.document import JobDocument
from tests.hardening.support import actor, log_lines, recorded
from tests.helpers import spawn, stop, wait_for
from tests.jobs import tasks as t
from tests.servers import ServerProcess

IN, OUT_A, OUT_B = "{hr}:in", "{hr}:a", "{hr}:b"
JOBS = 300


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[ServerProcess]:
    data = tmp_path / "data"
    data.mkdir()
    srv = ServerProcess(config={"appendonly": "yes", "appendfsync": "always"}, data_dir=data)
    yield srv.start()
    srv.close()


def _failed_attempts(log: Path, what: str) -> list[int]:
    lines = log_lines(log, f"{what} failed attempt=")
    return [int(m.group(1)) for m in (re.search(r"attempt=(\d+)", x) for x in lines) if m]


def _start_worker(url: str, log: Path) -> subprocess.Popen[str]:
    client = redis.Redis.from_url(url)
    jobs = [JobDocument(t.count.name, (url, n), queue="t:count").encode() for n in range(JOBS)]
    client.lpush("t:count", *jobs)
    sets = ("--set", "lease=1.5", "--set", "popTimeout=0.5")
    return spawn("worker", "tests.jobs.tasks", "--redis", url, "-q", "t:count", *sets, log=log)


def _steps_logged_once(log: Path) -> None:
    """Each retry loop logs attempts 1, 2, … in order until it recovers, at most 7 of them
    (0.1 s doubling to the 5 s cap); a stale pooled connection may start a short new run."""
    runs: dict[str, list[int]] = {}
    for line in log_lines(log, "logger=redline.backoff"):
        what, _, rest = line.split("logger=redline.backoff ", 1)[1].partition(" failed attempt=")
        if rest:
            runs.setdefault(what, []).append(int(rest.split()[0]))
            attempts = runs[what]
            assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) <= 7, line
        else:
            runs.pop(line.split("logger=redline.backoff ", 1)[1].split(" recovered")[0], None)


def _total(where: Path) -> int:
    return sum(recorded(where / f"p{i}.txt").total() for i in range(2))


def test_server_restart_loses_no_acknowledged_message(
    durable: ServerProcess, tmp_path: Path
) -> None:
    url, logs = durable.url, tmp_path / "logs"
    logs.mkdir()
    mpush_log = logs / "mpush.log"
    sets = ["--set", f"in={IN}", "--set", f"out={json.dumps([OUT_A, OUT_B])}"]
    mpush = spawn("mpush", "--redis", url, *sets, "--set", "popTimeout=1", log=mpush_log)
    producers = [
        actor("produce", url, IN, str(tmp_path / f"p{i}.txt"), f"p{i}", log=logs / f"p{i}.log")
        for i in range(2)
    ]
    consumer = actor("consume", url, OUT_A, str(tmp_path / "a.txt"), log=logs / "consumer.log")
    worker = _start_worker(url, logs / "worker.log")
    client = durable.client()
    try:
        wait_for(lambda: len(recorded(tmp_path / "a.txt")) > 200, timeout=30)
        durable.kill()
        # Stay down until mpush has backed off a few steps, then come back on the same AOF.
        wait_for(lambda: len(_failed_attempts(mpush_log, "service=mpush step")) >= 4, timeout=20)
        durable.start()
        wait_for(lambda: log_lines(mpush_log, "service=mpush step recovered"), timeout=30)
        seen = _total(tmp_path)
        wait_for(lambda: _total(tmp_path) > seen + 200, timeout=30)
    finally:
        for proc in producers:
            stop(proc)
    acked = recorded(tmp_path / "p0.txt") + recorded(tmp_path / "p1.txt")
    try:
        wait_for(lambda: set(acked) <= set(recorded(tmp_path / "a.txt")), timeout=30)
        wait_for(lambda: client.scard("t:done") == JOBS, timeout=60)
    finally:
        stop(consumer)
        assert stop(worker) == 0, (logs / "worker.log").read_text()[-3000:]
        assert stop(mpush, signal.SIGTERM) == 0
    on_b = {p.decode() for p in client.lrange(OUT_B, 0, -1)}
    consumed = recorded(tmp_path / "a.txt")
    missing_a, missing_b = set(acked) - set(consumed), set(acked) - on_b
    print(f"acknowledged={len(acked)} consumed={consumed.total()} on_b={len(on_b)}")
    assert not missing_a and not missing_b
    attempts = _failed_attempts(mpush_log, "service=mpush step")
    # One line per backoff step of one outage (0.1 s doubling to the 5 s cap: at most 7),
    # then one recovery line; never a line per retry of a tight loop.
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) <= 7
    assert len(log_lines(mpush_log, "service=mpush step recovered")) == 1
    # Everything else that failed (the lifecycle tick) follows the same rule: no flood.
    assert len(log_lines(mpush_log, "level=warning")) <= 2 * 7
    _steps_logged_once(logs / "worker.log")
    for i in range(2):  # the kill cut off each producer's pushes: retried, then recovered
        assert log_lines(logs / f"p{i}.log", "push recovered after attempts=")
    assert {int(n) for n in client.smembers("t:done")} == set(range(JOBS))
