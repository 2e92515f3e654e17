"""Against the real thing: Ruby's Sidekiq 6 (Debian's ruby-sidekiq) beside redline's workers."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import redis

from redline.connection import connect
from redline.jobs.sidekiq import enqueue_sidekiq, enqueue_sidekiq_sync
from redline.jobs.sidekiq.fetch import INFLIGHT, inflight_key
from tests.helpers import stop, wait_for
from tests.jobs.sidekiq.support import needs_sidekiq, ruby, start_sidekiq, start_worker

pytestmark = needs_sidekiq

JOBS = 1000


def identity_of(client: redis.Redis, pid: int) -> str | None:
    """The Sidekiq identity (host:pid:nonce) process `pid` registered, if any."""
    for member in client.smembers("processes"):
        if member.decode().split(":")[-2] == str(pid):
            return str(member.decode())
    return None


def busy_worker(client: redis.Redis, workers: list[subprocess.Popen[str]]) -> object:
    """A worker that is running a job right now and holds it in its in-flight list."""
    for proc in workers:
        identity = identity_of(client, proc.pid)
        running = int(client.hget("t:running", str(proc.pid)) or 0)
        if identity and running > 0 and client.llen(inflight_key(identity, "default")) > 0:
            return proc
    return None


def registered(client: redis.Redis) -> set[str]:
    """The processes listed in the registry of in-flight lists."""
    return {json.loads(member)[0] for member in client.zrange(INFLIGHT, 0, -1)}


def leftovers(client: redis.Redis) -> dict[str, int]:
    """Everything that should be empty once every job ran: queue, in-flight lists, sets."""
    found = {key: client.llen(key) for key in ("queue:default",)}
    for key in client.scan_iter(f"{INFLIGHT}:*"):
        found[key.decode()] = client.llen(key)
    for key in ("retry", "dead", "schedule"):
        found[key] = client.zcard(key)
    return {key: n for key, n in found.items() if n}


def test_ruby_push_bulk_jobs_survive_five_sigkills_of_python_workers(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("t:pause", "0.1")  # jobs long enough for kills to land in them
    jids = ruby("push_bulk.rb", redis_url, str(JOBS))
    assert len(set(jids)) == JOBS and client.llen("queue:default") == JOBS
    log = tmp_path / "workers.log"
    workers = [start_worker(redis_url, log, "-c", "2") for _ in range(2)]

    def live() -> set[str | None]:
        return {identity_of(client, proc.pid) for proc in workers}

    try:
        for _ in range(5):  # each victim is running a job it holds in flight
            victim = wait_for(lambda: busy_worker(client, workers), timeout=120)
            assert isinstance(victim, subprocess.Popen)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            workers.remove(victim)
            workers.append(start_worker(redis_url, log, "-c", "2"))
        client.set("t:pause", "0")
        wait_for(lambda: client.scard("t:done") == JOBS, timeout=240, interval=0.2)
        wait_for(lambda: not leftovers(client), timeout=60, interval=0.2)
        wait_for(lambda: registered(client) <= live(), timeout=60)  # the dead ones forgotten
    except AssertionError as exc:  # what was left where, for whoever reads the failure
        state = (client.scard("t:done"), leftovers(client), registered(client), live())
        raise AssertionError(f"{exc}; done, leftovers, registered, live: {state}") from None
    finally:
        for proc in workers:
            stop(proc)
    assert {int(n) for n in client.smembers("t:done")} == set(range(JOBS))
    assert int(client.get("t:runs") or 0) > JOBS  # the kills hit running jobs: they ran again
    assert "recovered the jobs of a dead process" in log.read_text()
    assert not leftovers(client) and client.zcard(INFLIGHT) == 0


def test_python_enqueued_jobs_run_in_ruby_sidekiq(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    for n in range(JOBS // 2):
        enqueue_sidekiq_sync(client, "HardWorker", n, "sync")

    async def push_rest() -> None:
        aclient = connect(redis_url)
        for n in range(JOBS // 2, JOBS):
            await enqueue_sidekiq(aclient, "HardWorker", n, "async")
        await aclient.aclose()

    asyncio.run(push_rest())
    assert client.smembers("queues") == {b"default"}
    proc = start_sidekiq(redis_url, tmp_path / "sidekiq.log")
    try:
        wait_for(lambda: client.scard("t:done") == JOBS, timeout=180, interval=0.2)
    finally:
        assert stop(proc) == 0, (tmp_path / "sidekiq.log").read_text()
    assert {int(n) for n in client.smembers("t:done")} == set(range(JOBS))
    assert int(client.get("t:ruby-runs") or 0) == JOBS
    assert client.llen("queue:default") == 0


def test_python_failures_counts_and_process_as_sidekiqs_api_sees_them(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    jid = enqueue_sidekiq_sync(client, "FailingWorker", "no", retry=2, tags=["kept"])
    for n in range(3):
        enqueue_sidekiq_sync(client, "HardWorker", n)
    held = enqueue_sidekiq_sync(client, "BlockingWorker", "t:release")
    worker = start_worker(redis_url, tmp_path / "w.log")
    try:
        identity = wait_for(lambda: identity_of(client, worker.pid), timeout=60)
        wait_for(lambda: client.zcard("retry") == 1 and client.scard("t:done") == 3, timeout=60)
        wait_for(lambda: client.hget(identity, "busy") == b"1", timeout=30)
        seen = ruby("api.rb", redis_url)
        [process] = seen["processes"]
        assert (process["identity"], process["pid"]) == (identity, worker.pid)
        assert (process["busy"], process["queues"]) == (1, ["default"])
        assert (process["labels"], process["quiet"]) == (["redline"], False)
        [work] = seen["workers"]
        assert (work["queue"], work["payload"]["jid"]) == ("default", held)
        [retry] = seen["retries"]
        assert (retry["jid"], retry["class"], retry["args"]) == (jid, "FailingWorker", ["no"])
        assert (retry["retry_count"], retry["error_class"]) == (0, "ValueError")
        assert retry["error_message"] == "refused: no" and retry["failed_at"] > 0
        assert retry["tags"] == ["kept"] and retry["created_at"] > 0  # fields kept
        ruby("api.rb", redis_url, "add-retries-to-queue")  # the Web UI's "Add to queue"
        wait_for(lambda: retry_counts(client) == [1], timeout=60)
        ruby("api.rb", redis_url, "add-retries-to-queue")
        wait_for(lambda: client.zcard("dead") == 1, timeout=60)
        # Held past redis-py's default read timeout (5 s), as a loaded machine holds it: the
        # held job must not fail on its own client's timeout (it did: processed/failed 8/4).
        wait_for(lambda: time.time() > work["run_at"] + 6, timeout=30)
        client.lpush("t:release", "go")
        wait_for(lambda: client.get("stat:processed") == b"7", timeout=60)  # 3 + 3 runs + 1
        seen = ruby("api.rb", redis_url)
    finally:
        assert stop(worker) == 0
    assert (seen["processed"], seen["failed"], seen["retries"]) == (7, 3, [])
    [dead] = seen["dead"]
    assert (dead["jid"], dead["retry_count"], dead["error_class"]) == (jid, 2, "ValueError")
    assert dead["retried_at"] >= dead["failed_at"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert client.get(f"stat:processed:{today}") == b"7"
    assert client.get(f"stat:failed:{today}") == b"3"
    assert ruby("api.rb", redis_url)["processes"] == []  # left processes at its stop


def retry_counts(client: redis.Redis) -> list[int]:
    return [json.loads(member)["retry_count"] for member in client.zrange("retry", 0, -1)]


def test_ruby_and_python_pollers_never_move_a_scheduled_job_twice(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    rubyist = start_sidekiq(redis_url, tmp_path / "sidekiq.log")
    pythonist = start_worker(redis_url, tmp_path / "w.log")
    try:
        wait_for(lambda: client.scard("processes") == 2, timeout=60)
        start = time.time() + 1
        for n in range(300):  # due over six seconds, while both pollers run
            enqueue_sidekiq_sync(client, "HardWorker", n, at=start + n / 50)
        wait_for(lambda: client.scard("t:done") == 300, timeout=120, interval=0.2)
        wait_for(lambda: not leftovers(client), timeout=60)
    finally:
        stop(pythonist)
        stop(rubyist)
    assert int(client.get("t:runs") or 0) == 300  # once each: no job was moved twice
