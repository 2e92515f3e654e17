"""Cancellation and pause against real servers: waiting, scheduled and running jobs (async on
another process, sync in a thread), a paused queue over seconds of enqueueing, the cluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from redline.connection import AsyncClient
from redline.errors import JobFailed
from redline.jobs import (
    JobState,
    cancel_job,
    enqueue,
    enqueue_in,
    job_events,
    job_keys,
    pause_queue,
    resume_queue,
)
from redline.jobs.control import CONTROL_EVERY
from redline.queue import ReliableQueue
from tests.helpers import spawn, stop
from tests.jobs import control_tasks as c
from tests.jobs.running import WorkerRunning, holds, until


class Running(WorkerRunning):
    """A worker of `tests.jobs.control_tasks` running in this event loop until `stop()`."""

    def __init__(self, url: str, queues: list[str]) -> None:
        super().__init__(c.tasks, url, queues, concurrency=4, grace=5)


@pytest.fixture
async def worker(redis_url: str) -> AsyncIterator[Running]:
    running = Running(redis_url, ["c:jobs"])
    yield running
    await running.stop()


async def marks(client: AsyncClient, key: str) -> list[str]:
    return [m.decode() for m in await client.lrange(key, 0, -1)]  # type: ignore[misc]


async def state_is(job: Any, state: JobState) -> bool:
    status = await job.status()
    return status is not None and status.state is state


async def cancel_once_started(client: AsyncClient, job: Any, seconds: float = 20) -> list[str]:
    """Cancel `job` once it has marked ``held`` started; wait for its state `cancelled`; what
    it marked."""
    assert job is not None
    await until(lambda: marks(client, "held"), seconds)
    assert await job.cancel()
    await until(lambda: state_is(job, JobState.CANCELLED))
    return await marks(client, "held")


async def assert_queue_empty(client: AsyncClient, queue: str) -> None:
    """Nothing left once the worker has settled: a job's side effect comes before its ack, so
    wait for the in-flight jobs to be acked before judging."""

    async def settled() -> bool:
        info = await ReliableQueue(client).info(queue)
        return info.inflight == 0 and info.waiting == 0

    with contextlib.suppress(TimeoutError):
        await until(settled)
    info = await ReliableQueue(client).info(queue)
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)
    assert await client.zcard(job_keys(queue).scheduled) == 0


async def test_cancelled_waiting_and_scheduled_jobs_never_run(
    aredis: AsyncClient, redis_url: str
) -> None:
    waiting = await enqueue(aredis, c.mark, redis_url, "ran", 1)
    scheduled = await enqueue_in(aredis, 0.5, c.mark, redis_url, "ran", 2)
    assert waiting is not None and scheduled is not None
    assert await waiting.cancel() and await scheduled.cancel()
    running = Running(redis_url, ["c:jobs"])
    try:
        await until(lambda: state_is(waiting, JobState.CANCELLED))
        await until(lambda: state_is(scheduled, JobState.CANCELLED))
        after = await enqueue(aredis, c.mark, redis_url, "ran", 3)
        assert after is not None and await after.result(timeout=20) == 3
    finally:
        await running.stop()
    assert await marks(aredis, "ran") == ["3"]
    with pytest.raises(JobFailed, match="cancelled"):
        await waiting.result(timeout=5)
    await assert_queue_empty(aredis, "c:jobs")
    stats = await aredis.hgetall(job_keys("c:jobs").stats)  # type: ignore[misc]
    assert stats[b"cancelled"] == b"2" and b"failed" not in stats and b"retried" not in stats


async def test_a_running_async_job_is_cancelled_on_another_process(
    aredis: AsyncClient, redis_url: str, tmp_path: Path
) -> None:
    proc = spawn(
        *("worker", "tests.jobs.control_tasks", "--redis", redis_url, "-q", "c:jobs"),
        log=tmp_path / "worker.log",
    )
    try:
        job = await enqueue(aredis, c.hold, redis_url, "held")
        assert await cancel_once_started(aredis, job, 60) == [f"started:{job.id}", "cancelled"]
        await assert_queue_empty(aredis, "c:jobs")
        assert not await job.cancel()  # finished: nothing left to cancel
    finally:
        assert stop(proc) == 0, (tmp_path / "worker.log").read_text()


async def test_a_job_that_swallows_a_cancel_is_cancelled_again(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    job = await enqueue(aredis, c.hold_past_one_cancel, redis_url, "held")
    marked = await cancel_once_started(aredis, job)
    assert marked == [f"started:{job.id}", "swallowed", "cancelled"]
    await assert_queue_empty(aredis, "c:jobs")


async def test_a_sync_job_sees_the_cancel_flag_and_its_result_is_discarded(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    job = await enqueue(aredis, c.hold_sync, redis_url, "held")
    assert await cancel_once_started(aredis, job) == [f"started:{job.id}", "saw-cancel"]
    record = await job.record()
    assert record is not None and record.state is JobState.CANCELLED and record.result is None
    await assert_queue_empty(aredis, "c:jobs")


async def test_a_paused_queue_starts_nothing_until_resumed(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    first = await enqueue(aredis, c.mark, redis_url, "ran", 0)
    assert first is not None and await first.result(timeout=20) == 0  # the worker is serving
    await pause_queue(aredis, "c:jobs")
    await paused_in(worker, "c:jobs")
    for n in range(1, 21):  # a few seconds of enqueueing while paused
        assert await enqueue(aredis, c.mark, redis_url, "ran", n) is not None
        await asyncio.sleep(0.15)
    assert await marks(aredis, "ran") == ["0"]
    assert (await ReliableQueue(aredis).info("c:jobs")).waiting == 20
    await resume_queue(aredis, "c:jobs")
    await until(lambda: _count_is(aredis, "ran", 21))
    assert sorted(int(n) for n in await marks(aredis, "ran")) == list(range(21))
    await assert_queue_empty(aredis, "c:jobs")


async def paused_in(running: Running, queue: str) -> None:
    """Wait (bounded) until `running`'s worker has read that `queue` is paused, and the pop it
    may have had in flight from before has ended: from then on it pops nothing of `queue`. A
    fixed sleep (the pause's ~1 s bound) is not enough on a starved machine."""
    await until(lambda: holds(queue in running.worker.runs.control.paused), 60)
    # The worker's pops take turns on the queue's held connection with `send`: a send of
    # nothing returns once the pop in flight (sent before the pause was read) is over.
    await running.worker.queue.send(())


async def _count_is(client: AsyncClient, key: str, n: int) -> bool:
    return bool(await client.llen(key) == n)  # type: ignore[misc]


@pytest.mark.cluster
async def test_cancel_and_pause_on_a_cluster(
    acluster: AsyncClient, cluster: Any, prefix: str
) -> None:
    queue = f"{prefix}:c"
    flag = f"{{{prefix}}}:ran"
    hold, mark = c.hold.options(queue=queue), c.mark.options(queue=queue)
    await pause_queue(acluster, queue)
    waiting = await enqueue(acluster, mark, cluster.url, flag, 1)
    assert waiting is not None and await cancel_job(acluster, queue, waiting.id)
    running = Running(cluster.url, [queue])
    try:
        held = await enqueue(acluster, hold, cluster.url, flag)
        assert held is not None
        await asyncio.sleep(2 * CONTROL_EVERY + 0.5)
        assert await marks(acluster, flag) == []  # paused: nothing started
        await resume_queue(acluster, queue)
        await until(lambda: marks(acluster, flag))
        assert await held.cancel()
        await until(lambda: state_is(held, JobState.CANCELLED))
        await until(lambda: state_is(waiting, JobState.CANCELLED))
    finally:
        await running.stop()
    assert await marks(acluster, flag) == [f"started:{held.id}", "cancelled"]
    await assert_queue_empty(acluster, queue)
    seen = [e.event async for e in job_events(acluster, queue) if e.job == held.id]
    assert seen == ["enqueued", "started", "cancelled"]
