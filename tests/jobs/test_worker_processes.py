"""Real `redline worker` processes: SIGKILLed at random and restarted, every job still runs;
two replicas, one cron scheduler."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import redis

from redline.jobs import enqueue, enqueue_sync, job_keys
from redline.jobs.document import JobDocument
from redline.queue import ReliableQueue
from tests.helpers import kill_holding, spawn_worker, stop, wait_for
from tests.jobs import tasks as t

JOBS = 600


def start_worker(
    url: str, queue: str, log: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {"REDLINE_TEST_URL": url, **(env or {})}
    return spawn_worker("tests.jobs.tasks", url, queue, log, *extra, env=env)


def queue_counts(url: str, name: str) -> tuple[int, int, int, int]:
    import asyncio

    from redline.connection import connect

    async def read() -> tuple[int, int, int, int]:
        client = connect(url)
        info = await ReliableQueue(client).info(name)
        await client.aclose()
        return info.waiting, info.inflight, info.delayed, info.dead

    return asyncio.run(read())


def _busy(client: redis.Redis, workers: list[subprocess.Popen[str]]) -> list[subprocess.Popen[str]]:
    """The workers that are running a job (after its run was counted, before it returned)."""
    marks = client.hgetall("t:busy")
    return [p for p in workers if int(marks.get(str(p.pid).encode(), 0)) > 0]


def test_sigkilled_workers_lose_no_job(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    payloads = [
        JobDocument(t.held.name, (redis_url, n), queue="t:count").encode() for n in range(JOBS)
    ]
    client.lpush("t:count", *payloads)
    log = tmp_path / "workers.log"
    workers = [start_worker(redis_url, "t:count", log) for _ in range(2)]
    rng = random.Random(7)
    interrupted = []  # per kill: the runs the victim had started and not finished
    try:
        while len(interrupted) < 6:  # kill a worker with jobs in hand, start another
            victim = rng.choice(wait_for(lambda: _busy(client, workers), timeout=60))
            busy = lambda v=victim: int(client.hget("t:busy", str(v.pid)) or 0)  # noqa: E731
            if kill_holding(victim, busy):
                interrupted.append(busy())
                workers.remove(victim)
                workers.append(start_worker(redis_url, "t:count", log))
        wait_for(lambda: client.scard("t:done") == JOBS, timeout=90)
        wait_for(lambda: queue_counts(redis_url, "t:count") == (0, 0, 0, 0), timeout=60)
    finally:
        for proc in workers:
            stop(proc)
    done = {int(n) for n in client.smembers("t:done")}
    assert done == set(range(JOBS))
    assert all(interrupted), interrupted  # every kill hit jobs that had run and were not acked
    # each of those runs again after its lease lapses: a run more than the jobs, per job held
    assert int(client.get("t:runs") or 0) >= JOBS + sum(interrupted)


def test_sigterm_returns_or_finishes_in_flight_jobs(redis_url: str, tmp_path: Path) -> None:
    import asyncio

    from redline.connection import connect

    async def put() -> None:
        client = connect(redis_url)
        await enqueue(client, t.sleepy, 60)
        await enqueue(client, t.sleepy, 0.01)
        await client.aclose()

    asyncio.run(put())
    proc = start_worker(redis_url, "t:slow", tmp_path / "w.log")
    wait_for(lambda: queue_counts(redis_url, "t:slow")[1] == 1, timeout=60)
    client = redis.Redis.from_url(redis_url)
    [ident] = client.lrange("redline:worker:ids", 0, -1)  # registered as a service instance
    assert client.hget(b"redline:worker:" + ident, "serves") == b"t:slow"
    assert stop(proc, signal.SIGTERM) == 0
    waiting, inflight, delayed, dead = queue_counts(redis_url, "t:slow")
    assert (inflight, dead) == (0, 0) and waiting + delayed == 1  # the long one went back
    assert "worker stopped completed=1" in (tmp_path / "w.log").read_text()
    assert client.lrange("redline:worker:ids", 0, -1) == []  # unregistered
    assert client.hget("redline:worker:metrics:jobs", "count") == b"1"


def test_a_worker_killed_while_settling_a_unique_job_leaves_no_lock(
    redis_url: str, tmp_path: Path
) -> None:
    """SIGKILLed after running a unique job, before acking it: the job runs again elsewhere,
    and its lock does not outlive it (a cron entry's lock would silence the entry for a day)."""
    client = redis.Redis.from_url(redis_url)
    job_id = enqueue_sync(client, t.once, 5)
    lock = job_keys("t:jobs").unique(t.once.unique_key((5,), {}) or "")
    assert job_id and client.get(lock) == job_id.encode()
    log = tmp_path / "w.log"
    dying = start_worker(redis_url, "t:jobs", log, env={"REDLINE_TEST_KILL_AT_ACK": "1"})
    assert dying.wait(60) == -signal.SIGKILL, log.read_text()
    assert client.get(lock) is None  # released before the ack that never came
    survivor = start_worker(redis_url, "t:jobs", log)
    try:  # the lease lapses, the job is redelivered and completes
        wait_for(lambda: client.hget(job_keys("t:jobs").record(job_id), "state"), timeout=60)
        wait_for(lambda: queue_counts(redis_url, "t:jobs") == (0, 0, 0, 0), timeout=60)
    finally:
        stop(survivor)
    record = client.hgetall(job_keys("t:jobs").record(job_id))
    # the kill interrupted the first delivery, which ran: the survivor completed the second
    assert (record[b"state"], record[b"attempts"]) == (b"complete", b"2")
    assert client.get(lock) is None
    assert enqueue_sync(client, t.once, 5) is not None  # the key is free for the next job


def _lease_holder(client: redis.Redis) -> str | None:
    """The pid part of the cron lease (``<host>:<pid>…``), or None while nobody holds it."""
    value = client.get("redline:cron:lease")
    parts = value.split(b":") if value else []
    return parts[1].decode() if len(parts) > 1 else None


def test_one_cron_scheduler_across_two_workers(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    overdue = str(time.time() - 400 * 86400)  # the yearly tick is due, once
    client.hset("redline:cron:last", t.tick.name, overdue)
    log = tmp_path / "cron.log"
    workers = {p.pid: p for p in (start_worker(redis_url, "t:cron", log) for _ in range(2))}
    try:
        wait_for(lambda: client.llen("t:ticks") == 1, timeout=60)
        # settled (acked, its unique lock released) before the kill: a kill before the ack
        # would have the job redelivered, a second tick that is no scheduler's
        wait_for(lambda: queue_counts(redis_url, "t:cron") == (0, 0, 0, 0), timeout=60)
        assert not client.exists(job_keys("t:cron").unique(f"cron:{t.tick.name}"))
        holder = int(client.get("redline:cron:lease").decode().split(":")[1])
        assert holder in workers
        killed = workers.pop(holder)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        client.hset("redline:cron:last", t.tick.name, overdue)  # due again: the survivor runs it
        wait_for(lambda: client.llen("t:ticks") == 2, timeout=60)
        survivor = next(iter(workers))
        # the lease may be absent for a moment between the old holder's and the survivor's
        wait_for(lambda: _lease_holder(client) == str(survivor), timeout=30)
    finally:
        for proc in workers.values():
            stop(proc)
    assert client.llen("t:ticks") == 2  # never both schedulers at once


class SteadyFeed:
    """Keeps at least `low` `steady` jobs waiting on t:steady (a producer under load)."""

    def __init__(self, client: redis.Redis, url: str, low: int = 20) -> None:
        self.client, self.url, self.low, self.fed = client, url, low, 0

    def __call__(self) -> None:
        if self.client.llen("t:steady") < self.low:
            numbers = range(self.fed, self.fed + self.low)
            docs = [JobDocument(t.steady.name, (self.url, n), queue="t:steady") for n in numbers]
            self.client.lpush("t:steady", *[d.encode() for d in docs])
            self.fed += self.low

    def entries(self, name: str) -> list[tuple[int, int, int]]:
        """(pid, job, waiting) of each `started` or `ran` record (waiting: -1 for started)."""
        rows = [e.decode().split(":") for e in self.client.lrange(f"t:steady:{name}", 0, -1)]
        return [(int(r[0]), int(r[1]), int(r[2]) if len(r) > 2 else -1) for r in rows]

    def held_by(self, pid: int) -> set[int]:
        """Jobs process `pid` started and did not finish."""
        started = {n for p, n, _ in self.entries("started") if p == pid}
        return started - {n for p, n, _ in self.entries("ran") if p == pid}


def test_a_killed_workers_jobs_rerun_while_the_backlog_lasts(
    redis_url: str, tmp_path: Path
) -> None:
    """Under a steady backlog, the jobs a SIGKILLed worker held run again elsewhere while jobs
    still wait (before, expired leases came back only once the backlog ran out: never, here)."""
    client = redis.Redis.from_url(redis_url)
    feed = SteadyFeed(client, redis_url)
    feed()
    log = tmp_path / "w.log"
    victim, survivor = (start_worker(redis_url, "t:steady", log) for _ in range(2))
    try:
        wait_for(lambda: feed() or len(feed.held_by(victim.pid)) >= 2, timeout=60)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        lost = feed.held_by(victim.pid)  # final: the victim writes nothing more

        def rerun() -> set[int]:
            feed()
            return {n for p, n, _ in feed.entries("ran") if p == survivor.pid and n in lost}

        wait_for(lambda: rerun() == lost, timeout=90)
        waiting = [w for p, n, w in feed.entries("ran") if p == survivor.pid and n in lost]
        assert all(w > 0 for w in waiting), waiting  # jobs were still waiting when they re-ran
        wait_for(lambda: queue_counts(redis_url, "t:steady") == (0, 0, 0, 0), timeout=60)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                stop(proc)
    assert {n for _, n, _ in feed.entries("ran")} == set(range(feed.fed))  # none lost
