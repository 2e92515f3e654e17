"""`redline worker --processes N` as real processes: a SIGKILLed child is replaced (and its
job redelivered), `--max-jobs` recycles children without losing a job, SIGTERM stops all."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import redis

from redline.cli.supervise import cores
from redline.jobs import enqueue_sync, job_keys
from redline.jobs.busy import running_of
from redline.queue import SyncReliableQueue
from redline.scaling.procs import PROCESSES_ENV
from tests.helpers import REDLINE, spawn, stop, wait_for
from tests.jobs import control_tasks as c


def supervisor(url: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    return spawn(
        *("worker", "tests.jobs.control_tasks", "-q", "c:jobs", "-c", "4", "--redis", url),
        *("--set", "lease=2", "--set", "popTimeout=0.5", "--set", "grace=2"),
        *extra,
        log=log,
    )


def children(pid: int) -> set[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(p) for p in listed}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def assert_settled(client: redis.Redis, queue: str) -> None:
    info = SyncReliableQueue(client).info(queue)
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)


def test_a_killed_child_is_replaced_and_sigterm_stops_all(
    sredis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "supervisor.log"
    proc = supervisor(redis_url, log, "--processes", "2")
    try:
        first = wait_for(lambda: len(children(proc.pid)) == 2 and children(proc.pid), 60)
        job = enqueue_sync(sredis, c.hold_here, redis_url, "here")
        assert job is not None
        holder = int(wait_for(lambda: sredis.lindex("here", 0), 60))
        assert holder in first
        os.kill(holder, signal.SIGKILL)  # it holds the job: its lease lapses, it is redelivered
        now = wait_for(lambda: len(kids := children(proc.pid)) == 2 and kids != first and kids, 60)
        assert holder not in now and len(now & first) == 1
        again = int(wait_for(lambda: sredis.lindex("here", 1), 60))
        assert again in now  # the job ran again, on a live child
    finally:
        code = stop(proc, timeout=60)
    assert code == 0, log.read_text()
    assert not any(alive(pid) for pid in first | now)
    assert "worker exited slot=" in log.read_text()


def test_max_jobs_recycles_children_without_losing_a_job(
    sredis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "supervisor.log"
    proc = supervisor(redis_url, log, "--processes", "2", "--max-jobs", "15")
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, 60)
        for n in range(100):
            assert enqueue_sync(sredis, c.whoami, redis_url, "ran", n) is not None
        wait_for(lambda: len({r.split(b":")[0] for r in sredis.lrange("ran", 0, -1)}) == 100, 120)
        wait_for(lambda: SyncReliableQueue(sredis).info("c:jobs").inflight == 0, 60)
    finally:
        code = stop(proc, timeout=60)
    assert code == 0, log.read_text()
    runs = [r.decode().split(":") for r in sredis.lrange("ran", 0, -1)]
    assert sorted({int(n) for n, _ in runs}) == list(range(100))  # none lost
    per_process = Counter(pid for _, pid in runs)
    assert max(per_process.values()) <= 15 and len(per_process) >= 7  # recycled every 15
    assert_settled(sredis, "c:jobs")
    assert sredis.hget(job_keys("c:jobs").stats, "complete") is not None


async def test_recycle_stops_a_worker_above_its_memory_or_job_budget(redis_url: str) -> None:
    import asyncio

    from redline.cli.worker import WorkerConfig
    from redline.connection import connect
    from redline.jobs.recycle import Recycle, resident_mb
    from redline.jobs.worker import Worker
    from redline.runtime import Context

    assert resident_mb() > 1
    client = connect(redis_url)
    ctx = Context(WorkerConfig(redis=redis_url), client, asyncio.Event())
    worker = Worker(c.tasks, ["c:jobs"], cron=False)
    roomy = Recycle(worker, max_jobs=None, max_memory=1_000_000)
    await roomy.tick(ctx)
    assert not ctx.stopping.is_set() and roomy.reason() == ""
    tight = Recycle(worker, max_jobs=None, max_memory=1)
    assert tight.reason().startswith("memory_mb=")
    await tight.tick(ctx)
    assert ctx.stopping.is_set()
    budget = Recycle(worker, max_jobs=2, max_memory=None)
    worker.taken = 2
    assert budget.reason() == "jobs=2 max_jobs=2"
    await client.aclose()


def test_by_default_one_child_per_core_each_registered_under_its_own_pid(
    sredis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Without --processes (and without REDLINE_PROCESSES, which the suite sets) a worker is a
    supervisor of one child per core; a crash test finds the child holding a job by the pid
    in its instance record (and its busy list) and kills that."""
    env = {k: v for k, v in os.environ.items() if k != PROCESSES_ENV}
    log = tmp_path / "supervisor.log"
    args = ["worker", "tests.jobs.control_tasks", "-q", "c:jobs", "-c", "4", "--redis", redis_url]
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [*REDLINE, *args, "--set", "lease=2", "--set", "popTimeout=0.5", "--set", "grace=2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    expected = cores()
    try:
        if expected == 1:  # one core: one worker, in this very process
            wait_for(lambda: registered(sredis) == {proc.pid}, 60)
            return
        first = wait_for(lambda: len(kids := children(proc.pid)) == expected and kids, 60)
        wait_for(lambda: registered(sredis) == first, 60)
        job = enqueue_sync(sredis, c.hold_here, redis_url, "here")
        assert job is not None
        holder = int(wait_for(lambda: sredis.lindex("here", 0), 60))
        assert holder in first and holder != proc.pid
        wait_for(lambda: job in busy_ids(sredis, holder), 30)  # it says it runs the job
        os.kill(holder, signal.SIGKILL)
        now = wait_for(lambda: len(k := children(proc.pid)) == expected and k != first and k, 60)
        again = int(wait_for(lambda: sredis.lindex("here", 1), 60))
        assert again in now and holder not in now  # the job ran again, on a live child
    finally:
        code = stop(proc, timeout=60)
    assert code == 0, log.read_text()
    assert "supervisor started processes=" in log.read_text() or expected == 1


def registered(client: redis.Redis) -> set[int]:
    """The pids of the live instances in the workers' default namespace."""
    ids = [i.decode() for i in client.lrange("redline:worker:ids", 0, -1)]
    pids = [client.hget(f"redline:worker:{i}", "pid") for i in ids]
    return {int(p) for p in pids if p is not None}


def busy_ids(client: redis.Redis, pid: int) -> set[str]:
    """The jobs the worker instance of process `pid` lists as running."""
    for i in client.lrange("redline:worker:ids", 0, -1):
        fields = {
            k.decode(): v.decode()
            for k, v in client.hgetall(f"redline:worker:{i.decode()}").items()
        }
        if fields.get("pid") == str(pid):
            return {job.id for job in running_of(fields)}
    return set()
