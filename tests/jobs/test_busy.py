"""What each worker runs, in its instance record, across real `redline worker` processes: every
running delivery is listed by exactly the process that runs it, the lists empty when the jobs
end and go with the instances; a SIGKILLed worker's stale list does not claim the redelivery."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from pathlib import Path

import redis

from redline.connection import connect
from redline.dashboard.busy import Worker, holders, workers
from redline.jobs import JobDocument, enqueue_sync
from redline.queue import SyncReliableQueue
from tests.helpers import kill_holding, run, spawn, stop, wait_for
from tests.jobs import busy_tasks as b

NS = "b:workers"  # the workers' namespace (serviceNamespace)


def start_worker(url: str, log: Path, *sets: str) -> subprocess.Popen[str]:
    return spawn(
        *("worker", "tests.jobs.busy_tasks", "-q", "b:jobs", "-c", "4", "--redis", url),
        *("--set", f"serviceNamespace={NS}", "--set", "popTimeout=0.5", "--set", "grace=2"),
        *(x for s in sets for x in ("--set", s)),
        log=log,
    )


def read_workers(url: str) -> list[Worker]:
    async def read() -> list[Worker]:
        client = connect(url)
        try:
            return await workers(client)
        finally:
            await client.aclose()

    return asyncio.run(read())


def read_holders(url: str) -> dict[tuple[str, int], Worker]:
    async def read() -> dict[tuple[str, int], Worker]:
        client = connect(url)
        try:
            return await holders(client)
        finally:
            await client.aclose()

    return asyncio.run(read())


def listed(url: str) -> dict[tuple[str, int], int]:
    """(job id, attempt) -> pid of the worker listing it (each delivery listed once)."""
    found: dict[tuple[str, int], int] = {}
    for w in read_workers(url):
        for job in w.jobs:
            assert (job.id, job.attempt) not in found, f"{job.id} listed twice"
            found[(job.id, job.attempt)] = w.instance.pid
    return found


def in_flight(client: redis.Redis) -> set[tuple[str, int]]:
    """(job id, delivery count) of every delivery in flight on b:jobs."""
    pending = SyncReliableQueue(client).inspect("b:jobs", pending=True, count=100)
    return {(JobDocument.decode(m.payload).id, m.deliveries) for m in pending}


def test_each_worker_lists_the_jobs_it_runs_and_nothing_once_they_end(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    log = tmp_path / "workers.log"
    procs = [start_worker(redis_url, log) for _ in range(2)]
    try:
        wait_for(lambda: len(read_workers(redis_url)) == 2, 60)
        jobs = [enqueue_sync(client, b.hold, redis_url) for _ in range(5)]
        assert all(jobs)
        wait_for(lambda: len(b.started(client)) == 5, 60)
        runs = {(job, attempt): pid for job, pid, attempt in b.started(client)}
        assert set(runs.values()) <= {p.pid for p in procs}
        # every running delivery is listed, by the process that runs it, and nothing else is
        wait_for(lambda: listed(redis_url) == runs, 30)
        assert in_flight(client) == set(runs)
        by_pid = {w.instance.pid: w for w in read_workers(redis_url)}
        for pid, w in by_pid.items():
            mine = sum(1 for owner in runs.values() if owner == pid)
            assert (w.running, w.concurrency, w.instance.host) == (mine, 4, socket.gethostname())
            assert {j.queue for j in w.jobs} <= {"b:jobs"} and all(j.started > 0 for j in w.jobs)
        assert {key: w.instance.pid for key, w in read_holders(redis_url).items()} == runs
        shown = run("jobs", "busy", "--json", "--redis", redis_url)
        assert shown.returncode == 0, shown.stderr
        printed = [json.loads(line) for line in shown.stdout.splitlines()]
        assert {(p["id"], p["attempt"]): p["pid"] for p in printed} == runs
        assert {p["instance"] for p in printed} <= {w.instance.key for w in by_pid.values()}
        client.set(b.RELEASE, 1)
        wait_for(lambda: SyncReliableQueue(client).info("b:jobs").inflight == 0, 60)
        wait_for(lambda: listed(redis_url) == {}, 30)
        assert all(w.running == 0 for w in read_workers(redis_url))
    finally:
        codes = [stop(p, timeout=60) for p in procs]
    assert codes == [0, 0], log.read_text()
    assert read_workers(redis_url) == []  # the records went with the instances
    assert not client.exists(*(f"{NS}:{n}" for n in range(1, 10)))
    info = SyncReliableQueue(client).info("b:jobs")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)


def test_a_killed_workers_stale_list_does_not_claim_the_redelivered_job(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    log = tmp_path / "workers.log"
    procs = {p.pid: p for p in (start_worker(redis_url, log, "lease=2") for _ in range(2))}
    try:
        wait_for(lambda: len(read_workers(redis_url)) == 2, 60)
        job = enqueue_sync(client, b.hold, redis_url)
        assert job is not None
        [(_, holder, _)] = wait_for(lambda: b.started(client), 60)
        wait_for(lambda: listed(redis_url) == {(job, 1): holder}, 30)
        assert kill_holding(procs[holder], lambda: in_flight(client) == {(job, 1)})
        # its lease lapses: the other worker runs the job again, as delivery 2
        [other] = [pid for pid in procs if pid != holder]
        wait_for(lambda: (job, other, 2) in b.started(client), 60)
        wait_for(lambda: listed(redis_url).get((job, 2)) == other, 30)
        assert in_flight(client) == {(job, 2)}
        found = read_holders(redis_url)
        assert found[(job, 2)].instance.pid == other  # the live holder of the delivery
        assert found[(job, 1)].instance.pid == holder  # a dead record, not yet expired
        client.set(b.RELEASE, 1)
        wait_for(lambda: SyncReliableQueue(client).info("b:jobs").inflight == 0, 60)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop(proc, timeout=60)
    assert procs[other].returncode == 0, log.read_text()
    assert procs[holder].returncode == -signal.SIGKILL
    info = SyncReliableQueue(client).info("b:jobs")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)
    stale = [w for w in read_workers(redis_url) if w.instance.pid == holder]
    assert len(stale) == 1 and 0 < client.ttl(stale[0].instance.key) <= 60  # it expires
