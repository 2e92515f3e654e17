"""Concurrency caps and rate limits across real `redline worker` processes, some SIGKILLed."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import redis

from redline.jobs import enqueue_many_sync
from tests.helpers import kill_holding, spawn, stop, wait_for
from tests.jobs import limit_tasks as lt
from tests.jobs.test_worker_processes import queue_counts

JOBS = 300


def start_worker(url: str, queue: str, log: Path) -> subprocess.Popen[str]:
    """A worker of 16 with a 4 s lease: a killed one's slots come back soon, and a live one
    starved for a second or two (CI runs three test processes on two cores) still keeps its
    slots — a slot whose lease lapsed is free to another worker while its job runs on, which
    would break the cap for a reason outside the code under test (a 6 was seen against 4 with
    2 s leases at load 20)."""
    return spawn(
        "worker",
        "tests.jobs.limit_tasks",
        "--redis",
        url,
        "-q",
        queue,
        "-c",
        "16",
        "--set",
        "lease=4",
        "--set",
        "popTimeout=0.5",
        "--set",
        "grace=1",
        log=log,
    )


def _running(client: redis.Redis, pid: int) -> int:
    return int(client.hget("l:running", str(pid)) or 0)


def test_a_cap_holds_across_killed_workers_and_comes_back_whole(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    enqueue_many_sync(client, lt.capped, [((redis_url, n), {}) for n in range(JOBS)])
    log = tmp_path / "workers.log"
    workers = [start_worker(redis_url, "l:cap", log) for _ in range(3)]
    rng = random.Random(5)
    kills = 0
    try:
        while kills < 5:  # kill a worker running capped jobs, start another
            busy = wait_for(lambda: [p for p in workers if _running(client, p.pid)], 60, 0.01)
            victim = rng.choice(busy)
            if kill_holding(victim, lambda v=victim: _running(client, v.pid) > 0):
                kills += 1
                # its runs never finished: they stop counting as running (their slots stay
                # held until their leases end, so nothing can start in their place before)
                client.hdel("l:running", str(victim.pid))
                workers.remove(victim)
                workers.append(start_worker(redis_url, "l:cap", log))
        wait_for(lambda: client.scard("l:done") == JOBS, timeout=120)
        wait_for(lambda: queue_counts(redis_url, "l:cap") == (0, 0, 0, 0), timeout=60)
        seen = [int(n) for n in client.lrange("l:seen", 0, -1)]
        assert max(seen) == lt.CAP, (max(seen), log.read_text()[-2000:])
        # the killed workers' slots came back: CAP runs can be under way at once again
        client.delete("l:seen")
        calls = [((redis_url, JOBS + n), {"together": lt.CAP}) for n in range(lt.CAP)]
        enqueue_many_sync(client, lt.capped, calls)
        try:
            wait_for(lambda: client.scard("l:done") == JOBS + lt.CAP, timeout=60)
        except AssertionError:
            raise AssertionError(_state(client)) from None
    finally:
        for proc in workers:
            stop(proc)
    assert {int(n) for n in client.smembers("l:done")} == set(range(JOBS + lt.CAP))
    assert max(int(n) for n in client.lrange("l:seen", 0, -1)) == lt.CAP


def test_a_rate_limit_holds_across_two_workers(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    enqueue_many_sync(client, lt.rated, [((redis_url, n), {}) for n in range(40)])
    log = tmp_path / "workers.log"
    workers = [start_worker(redis_url, "l:rate", log) for _ in range(2)]
    try:
        wait_for(lambda: client.llen("l:starts") == 40, timeout=90)
        wait_for(lambda: queue_counts(redis_url, "l:rate") == (0, 0, 0, 0), timeout=30)
    finally:
        for proc in workers:
            stop(proc)
    starts = sorted(float(s) for s in client.lrange("l:starts", 0, -1))
    busiest = max(sum(1 for s in starts if t <= s < t + 1) for t in starts)
    # 5/s, and the burst of a sliding window: up to 5 more in a window measured from inside
    # the jobs (docs/jobs.md); 32 slots would start every job at once without the limit
    assert busiest <= 5 + 5, busiest
    assert busiest >= 5


def _state(client: redis.Redis) -> str:
    """What the cap's keys hold (for a failure's message)."""
    slots = "{l:cap}:job-concurrency:" + lt.capped.name
    return (
        f"slots={client.zrange(slots, 0, -1, withscores=True)} time={client.time()} "
        f"waiters={client.lrange(slots.replace('concurrency', 'concurrency-next'), 0, -1)} "
        f"running={client.hgetall('l:running')} info={client.hgetall('{l:cap}:deliveries')}"
    )


def test_a_killed_workers_held_slots_come_back_after_its_lease(
    redis_url: str, tmp_path: Path
) -> None:
    """A worker SIGKILLed while it runs capped jobs leaves the slots it held (named for it)
    counted until their lease deadline (4 s) passes; then another worker has the whole cap
    again: CAP jobs that each wait until CAP run at once all finish."""
    client = redis.Redis.from_url(redis_url)
    slots = "{l:cap}:job-concurrency:" + lt.capped.name
    enqueue_many_sync(client, lt.capped, [((redis_url, n, 3.0), {}) for n in range(lt.CAP)])
    log = tmp_path / "workers.log"
    victim = start_worker(redis_url, "l:cap", log)
    try:
        wait_for(lambda: _running(client, victim.pid) == lt.CAP, 60, 0.01)
        assert kill_holding(victim, lambda: _running(client, victim.pid) == lt.CAP)
    finally:
        stop(victim)
    held = client.zrange(slots, 0, -1)
    assert len(held) == lt.CAP and all(name.startswith(b"@") for name in held), held
    client.delete("l:running", "l:seen")
    enqueue_many_sync(
        client, lt.capped, [((redis_url, lt.CAP + n, 0, lt.CAP), {}) for n in range(lt.CAP)]
    )
    worker = start_worker(redis_url, "l:cap", log)
    try:
        wait_for(lambda: client.scard("l:done") == 2 * lt.CAP, timeout=90)
    finally:
        stop(worker)
    assert max(int(n) for n in client.lrange("l:seen", 0, -1)) == lt.CAP
