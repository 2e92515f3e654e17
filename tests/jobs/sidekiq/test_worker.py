"""`redline worker --sidekiq` on its own: unclaimed and broken jobs, shutdown, the Web UI's
signals, scheduled jobs (the Ruby side is in test_ruby.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest
import redis

from redline.cli.worker_config import SidekiqWorkerConfig
from redline.connection import AsyncClient
from redline.jobs import load_tasks
from redline.jobs import worker as jobs_worker
from redline.jobs.sidekiq import SidekiqWorker, enqueue_sidekiq, enqueue_sidekiq_sync
from redline.jobs.sidekiq.fetch import INFLIGHT
from redline.runtime import run_service
from tests.conftest import Cluster
from tests.helpers import run, stop, wait_for
from tests.jobs.running import until
from tests.jobs.sidekiq.support import start_worker
from tests.jobs.sidekiq.test_ruby import identity_of, leftovers


def test_a_job_no_task_claims_is_left_for_ruby_workers(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    jid = enqueue_sidekiq_sync(client, "RubyOnlyWorker", 1)
    [raw] = client.lrange("queue:default", 0, -1)
    worker = start_worker(redis_url, tmp_path / "w.log", "--set", "unknownDelay=600")
    try:
        wait_for(lambda: client.zcard("schedule") == 1, timeout=60)
    finally:
        assert stop(worker) == 0
    assert client.zrange("schedule", 0, -1) == [raw]  # unchanged, for Sidekiq to move back
    assert json.loads(raw)["jid"] == jid
    assert client.get("stat:processed") is None  # not run, not counted
    assert client.llen("queue:default") == 0 and client.zcard(INFLIGHT) == 0


def test_a_left_job_comes_back_to_its_queue(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    enqueue_sidekiq_sync(client, "RubyOnlyWorker", 1)
    [first] = [json.loads(raw)["enqueued_at"] for raw in client.lrange("queue:default", 0, -1)]

    def requeued_and_left_again() -> bool:  # moved back to the queue (a new enqueued_at)
        return any(
            json.loads(raw)["enqueued_at"] > first for raw in client.zrange("schedule", 0, -1)
        )

    worker = start_worker(redis_url, tmp_path / "w.log", "--set", "unknownDelay=0.5")
    try:  # it goes round (queue, schedule, queue…) until a Ruby worker takes it: never lost
        wait_for(requeued_and_left_again, timeout=60)
    finally:
        assert stop(worker) == 0
    assert client.llen("queue:default") + client.zcard("schedule") == 1


def test_unclaimed_and_broken_jobs_go_to_dead_when_so_configured(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    jid = enqueue_sidekiq_sync(client, "RubyOnlyWorker", 1)
    client.lpush("queue:default", b"not json")
    worker = start_worker(redis_url, tmp_path / "w.log", "--set", "unknownClass=dead")
    try:
        wait_for(lambda: client.zcard("dead") == 2, timeout=60)
    finally:
        assert stop(worker) == 0
    broken, unclaimed = sorted(client.zrange("dead", 0, -1), key=lambda raw: raw[0] == ord("{"))
    assert broken == b"not json"  # unchanged, as Sidekiq buries it
    fields = json.loads(unclaimed)
    assert (fields["jid"], fields["error_class"]) == (jid, "UnknownTaskError")
    assert "RubyOnlyWorker" in fields["error_message"]
    assert client.get("stat:failed") == b"2"
    assert leftovers(client) == {"dead": 2}


def test_sigterm_returns_the_job_in_hand_to_its_queue(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    jid = enqueue_sidekiq_sync(client, "BlockingWorker", "t:never")
    worker = start_worker(redis_url, tmp_path / "w.log")
    identity = wait_for(lambda: identity_of(client, worker.pid), timeout=60)
    wait_for(lambda: client.hget(identity, "busy") == b"1", timeout=60)
    assert client.llen("queue:default") == 0
    assert stop(worker, signal.SIGTERM) == 0
    [raw] = client.lrange("queue:default", 0, -1)
    assert json.loads(raw)["jid"] == jid
    assert client.zcard(INFLIGHT) == 0 and not client.exists(identity)
    assert client.smembers("processes") == set()
    assert client.get("stat:processed") is None  # given back, not run


def test_the_web_uis_quiet_and_stop_buttons(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    worker = start_worker(redis_url, tmp_path / "w.log")
    try:
        identity = wait_for(lambda: identity_of(client, worker.pid), timeout=60)
        client.lpush(f"{identity}-signals", "TSTP")  # what Sidekiq::Process#quiet! does
        wait_for(lambda: client.hget(identity, "quiet") == b"true", timeout=30)
        enqueue_sidekiq_sync(client, "HardWorker", 1)
        time.sleep(1)  # quiet: the job stays queued (a pause, not a synchronisation)
        # A fetch out when quiet came may have taken it: it goes back unrun, soon (bounded).
        wait_for(lambda: client.llen("queue:default") == 1, timeout=30)
        client.lpush(f"{identity}-signals", "TERM")  # Sidekiq::Process#stop!
        assert worker.wait(60) == 0
    finally:
        stop(worker)
    assert client.llen("queue:default") == 1 and client.smembers("processes") == set()


async def test_a_job_fetched_after_quiet_goes_back_to_its_queue_unrun(
    redis_url: str, aredis: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quiet (the Web UI's, which a heartbeat reads) can come while a fetch is out, blocked on
    the empty queue: the job that fetch then takes goes back to its queue unrun, as Sidekiq's
    own processor does with a job it fetched after quiet; it is not run."""
    monkeypatch.setattr(jobs_worker, "CONTROL_EVERY", 30.0)  # a fetch blocks its popTimeout
    monkeypatch.setenv("REDLINE_TEST_URL", redis_url)
    worker = SidekiqWorker(load_tasks("tests.jobs.sidekiq.tasks"), concurrency=2, grace=1)
    config = SidekiqWorkerConfig(redis=redis_url, popTimeout=4)
    stopping = asyncio.Event()
    running = asyncio.create_task(run_service(worker, config, [worker], stopping))
    try:
        await until(lambda: _fetch_just_blocked(aredis), 60)
        worker.process.quiet = True  # what its heartbeat does on TSTP
        assert await enqueue_sidekiq(aredis, "HardWorker", 1)
        await until(lambda: _queued_or_run(aredis, worker), 60)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 30)
    assert worker.completed == 0 and worker.taken == 0
    assert leftovers(redis.Redis.from_url(redis_url)) == {"queue:default": 1}


async def _fetch_just_blocked(client: AsyncClient) -> bool:
    """Whether a client of this database is blocked in a BLMOVE it sent less than 1 s ago (a
    fetch out on the empty queue, with seconds of its block left)."""
    db = client.connection_pool.connection_kwargs["db"]
    return any(
        c["cmd"] == "blmove" and "b" in c["flags"] and int(c["idle"]) == 0 and int(c["db"]) == db
        for c in await client.client_list()
    )


async def _queued_or_run(client: AsyncClient, worker: SidekiqWorker) -> bool:
    return bool(await client.llen("queue:default") == 1 or worker.completed)  # type: ignore[misc]


def test_scheduled_jobs_and_async_tasks_run(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    enqueue_sidekiq_sync(client, "AsyncAdder", 2, 3, at=time.time() + 1)
    enqueue_sidekiq_sync(client, "AsyncAdder", 1, 1)
    worker = start_worker(redis_url, tmp_path / "w.log")
    try:
        wait_for(lambda: client.llen("t:sums") == 2, timeout=60)
    finally:
        assert stop(worker) == 0
    assert sorted(int(n) for n in client.lrange("t:sums", 0, -1)) == [2, 5]
    assert client.get("stat:processed") == b"2" and not leftovers(client)


def test_a_cluster_is_refused_with_the_reason(cluster: Cluster) -> None:
    done = run("worker", "tests.jobs.sidekiq.tasks", "--sidekiq", "--redis", cluster.url)
    assert done.returncode == 2 and "does not run on a Redis Cluster" in done.stderr


def test_queues_as_arguments_need_sidekiq(redis_url: str) -> None:
    done = run("worker", "tests.jobs.tasks", "default", "--redis", redis_url)
    assert done.returncode == 2 and "go with --sidekiq" in done.stderr


def test_a_heartbeat_slower_than_its_expiry_is_refused(redis_url: str) -> None:
    done = run(
        "worker", "tests.jobs.sidekiq.tasks", "--sidekiq", "--set", "beat=90", "--redis", redis_url
    )
    assert done.returncode == 2 and "beat (90.0) must be below processExpire (60)" in done.stderr
