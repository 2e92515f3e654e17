"""The worker in-process against a real server: results, retries, dead letters, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from redline.connection import AsyncClient
from redline.errors import JobFailed, JobTimeout
from redline.jobs import Job, JobState, Task, enqueue, enqueue_in, job_keys
from redline.jobs.document import JobDocument
from redline.jobs.settling import JobOutcome
from redline.queue import Delivery, QueueKeys, ReliableQueue
from redline.runtime.metrics import Metrics
from tests.jobs import tasks as t
from tests.jobs.running import LEASE, WorkerRunning, holds, settler_of, until


class Running(WorkerRunning):
    """A worker of `tests.jobs.tasks` running in this event loop until `stop()`."""

    def __init__(
        self,
        url: str,
        queues: list[str],
        grace: float = 5.0,
        concurrency: int = 8,
        metrics: Metrics | None = None,
        lease: float = LEASE,
    ) -> None:
        super().__init__(
            t.tasks, url, queues, concurrency=concurrency, grace=grace, metrics=metrics, lease=lease
        )


@pytest.fixture
async def worker(redis_url: str) -> AsyncIterator[Running]:
    running = Running(redis_url, ["t:jobs"])
    yield running
    await running.stop()


async def test_async_and_sync_jobs_return_results(aredis: AsyncClient, worker: Running) -> None:
    a = await enqueue(aredis, t.add, 2, 3)
    b = await enqueue(aredis, t.shout, "hé")
    assert a is not None and b is not None
    assert await a.result(timeout=20) == 5
    assert await b.result(timeout=20) == "HÉ"
    record = await a.record()
    assert record is not None and record.state is JobState.COMPLETE and record.attempts == 1


async def test_failures_are_retried_then_dead_lettered_with_traceback(
    aredis: AsyncClient, worker: Running
) -> None:
    job = await enqueue(aredis, t.always_fails, "no")
    assert job is not None
    with pytest.raises(JobFailed, match="ValueError: refused: no") as failed:
        await job.result(timeout=30)
    assert "Traceback" in failed.value.traceback and "always_fails" in failed.value.traceback
    dead = await ReliableQueue(aredis).dead("t:jobs")
    assert len(dead) == 1 and dead[0].deliveries == 3  # 1 run + 2 retries
    assert "ValueError: refused: no" in dead[0].reason
    stats = await until(lambda: _stats_if(aredis, b"failed"))
    assert stats[b"retried"] == b"2" and stats[b"failed"] == b"1"


async def test_a_finished_job_keeps_its_lease_until_it_is_settled(
    redis_url: str, aredis: AsyncClient
) -> None:
    """A finished job frees its slot at once and waits for the settling, which a loaded worker
    can have far behind (a flood of failing jobs): its lease is extended meanwhile, as a
    running job's is, so it is not delivered again. Here the settling is held until the lease
    has either been extended or run out and the job been delivered again. (A lease of 15 s:
    its extension every 5 s is late only if the loop stalls for 10 s.)"""
    running = Running(redis_url, ["t:poison"], lease=15)
    try:
        settler = await until(lambda: settler_of(running))
        settle, reached, go_on = settler.settle, asyncio.Event(), asyncio.Event()

        async def held(outcomes: Sequence[JobOutcome]) -> int:
            reached.set()
            await go_on.wait()
            return await settle(outcomes)

        settler.settle = held  # type: ignore[method-assign]
        doc = JobDocument(t.poison.name, (1,), queue="t:poison")
        await aredis.lpush("t:poison", doc.encode())
        await asyncio.wait_for(reached.wait(), 30)  # it ran, failed, and waits to be settled
        keys = QueueKeys.of("t:poison")
        first = await _lease_end(aredis, keys)
        await until(lambda: _lease_moved(aredis, keys, first), seconds=60)
        go_on.set()
        dead = await until(lambda: ReliableQueue(aredis).dead("t:poison"), seconds=30)
        assert [d.deliveries for d in dead] == [1]  # extended, not delivered again
    finally:
        await running.stop()


async def test_the_worker_pops_nothing_while_its_settling_is_behind(
    redis_url: str, aredis: AsyncClient
) -> None:
    """With the settling held, the worker takes jobs until `unsettled_limit` finished jobs wait
    to be settled, and then none (every pop is counted with the backlog it was sent at): the
    rest stay waiting in the queue. Once the settling goes on, everything is drained, each
    job run once."""
    jobs = 40
    running = Running(redis_url, ["t:jobs"], concurrency=2)
    worker = running.worker
    try:
        settler = await until(lambda: settler_of(running))
        settle, go_on = settler.settle, asyncio.Event()

        async def held(outcomes: Sequence[JobOutcome]) -> int:
            await go_on.wait()
            return await settle(outcomes)

        settler.settle = held  # type: ignore[method-assign]
        pop, backlogs = worker._pop, []

        async def counted(*args: Any) -> list[Delivery]:
            backlogs.append(worker.unsettled)
            return await pop(*args)

        worker._pop = counted  # type: ignore[method-assign]
        enqueued = [await enqueue(aredis, t.add, i, 1) for i in range(jobs)]
        limit = worker.unsettled_limit
        await until(lambda: holds(worker.unsettled >= limit and worker.active == 0))
        assert [b for b in backlogs if b >= limit] == []  # no pop once the bound was met
        assert limit <= worker.taken <= limit + worker.concurrency
        assert (await ReliableQueue(aredis).info("t:jobs")).waiting == jobs - worker.taken
        go_on.set()
        for i, job in enumerate(enqueued):
            assert job is not None and await job.result(timeout=60) == i + 1
            record = await job.record()
            assert record is not None and record.attempts == 1
    finally:
        go_on.set()
        await running.stop()


async def _lease_end(client: AsyncClient, keys: QueueKeys) -> float:
    """The latest lease deadline of the queue's in-flight messages (0: none in flight)."""
    ends = await client.zrange(keys.inflight, 0, -1, withscores=True)
    return max((end for _, end in ends), default=0.0)


async def _lease_moved(client: AsyncClient, keys: QueueKeys, first: float) -> bool:
    """Whether a lease now ends later than `first`: extended, or a new delivery's."""
    return await _lease_end(client, keys) > first


async def test_a_task_gets_all_its_retries_whatever_its_max_deliveries(
    aredis: AsyncClient, redis_url: str
) -> None:
    # retries (12) above every task's max_deliveries (10 at most): the queue must not
    # dead-letter the job before the task's retries run out
    running = Running(redis_url, ["t:many"])
    try:
        await enqueue(aredis, t.fails_many_times)
        dead = await until(lambda: ReliableQueue(aredis).dead("t:many"), seconds=60)
    finally:
        await running.stop()
    assert len(dead) == 1 and dead[0].deliveries == 13  # 1 run + 12 retries
    assert "ValueError: again" in dead[0].reason


async def _stats_if(client: AsyncClient, field: bytes) -> Any:
    stats = await client.hgetall(job_keys("t:jobs").stats)  # type: ignore[misc]
    return stats if field in stats else None


async def test_timeout_fails_the_job(aredis: AsyncClient, worker: Running) -> None:
    job = await enqueue(aredis, t.too_slow)
    assert job is not None
    record = await until(job.record)
    assert record.state is JobState.DEAD and "TimeoutError" in record.error


async def test_unique_job_can_be_enqueued_again_once_done(
    aredis: AsyncClient, worker: Running
) -> None:
    first = await enqueue(aredis, t.once, 7)
    assert first is not None
    assert await first.result(timeout=20) == 7
    again = await until(lambda: enqueue(aredis, t.once, 7))
    assert again.id != first.id and await again.result(timeout=20) == 7


async def test_scheduled_job_runs_when_due(aredis: AsyncClient, worker: Running) -> None:
    job = await enqueue_in(aredis, 0.3, t.add, 1, 1)
    assert job is not None
    assert await aredis.zcard(job_keys("t:jobs").scheduled) == 1
    assert await job.result(timeout=20) == 2


async def test_a_payload_that_is_not_a_job_is_dead_lettered(
    aredis: AsyncClient, worker: Running
) -> None:
    await aredis.lpush("t:jobs", b"\xffnot json", b'{"task": "no.such.task"}')  # type: ignore[misc]
    queue = ReliableQueue(aredis)
    dead = await until(lambda: _dead_if(queue, 2))
    reasons = sorted(m.reason for m in dead)
    assert reasons[0].startswith("JobSerializationError: job document: not JSON")
    assert reasons[1].startswith("UnknownTaskError: no task named 'no.such.task'")


async def _dead_if(queue: ReliableQueue, n: int) -> Any:
    found = await queue.dead("t:jobs")
    return found if len(found) >= n else None


async def test_result_needs_result_ttl_and_times_out(aredis: AsyncClient) -> None:
    job = await enqueue(aredis, t.sleepy, 0)
    assert job is not None
    with pytest.raises(Exception, match="keeps no results"):
        await job.result(timeout=0.1)
    kept = Job(job.id, job.queue, job.task, aredis, result_ttl=5)
    with pytest.raises(JobTimeout):
        await kept.result(timeout=0.1)


async def test_shutdown_finishes_jobs_within_grace(redis_url: str, aredis: AsyncClient) -> None:
    running = Running(redis_url, ["t:slow"], grace=20)
    await enqueue(aredis, t.sleepy, 0.5)
    queue = ReliableQueue(aredis)
    await until(lambda: _inflight(queue, "t:slow"))
    await running.stop()
    info = await queue.info("t:slow")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)
    assert running.worker.completed == 1


async def test_shutdown_returns_jobs_that_outlive_grace(
    redis_url: str, aredis: AsyncClient
) -> None:
    running = Running(redis_url, ["t:slow"], grace=0.1)
    await enqueue(aredis, t.sleepy, 60)
    queue = ReliableQueue(aredis)
    await until(lambda: _inflight(queue, "t:slow"))
    await running.stop()
    info = await queue.info("t:slow")
    assert info.inflight == 0 and info.dead == 0 and info.waiting + info.delayed == 1
    assert running.worker.completed == 0


async def _inflight(queue: ReliableQueue, name: str) -> bool:
    return (await queue.info(name)).inflight > 0


def test_task_ref_is_not_callable_here() -> None:
    with pytest.raises(Exception, match="is a reference"):
        Task.ref("x")()


@pytest.mark.cluster
async def test_jobs_on_a_cluster(cluster: Any, acluster: AsyncClient, prefix: str) -> None:
    queue = "{" + prefix + "}:jobs"
    add = t.add.options(queue=queue)
    once = t.once.options(queue=queue)
    running = Running(cluster.url, [queue])
    try:
        job = await enqueue(acluster, add, 20, 22)
        unique = await enqueue(acluster, once, 1)
        assert job is not None and unique is not None
        assert await enqueue(acluster, once, 1) is None
        assert await job.result(timeout=30) == 42
        assert await unique.result(timeout=30) == 1
        later = await enqueue_in(acluster, 0.2, add, 1, 2)
        assert later is not None and await later.result(timeout=30) == 3
    finally:
        await running.stop()
