"""The event stream and job status against a real server: every state change in order (a
retried-then-completed job, a cancelled one), a reader restarted mid-stream misses none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from redline.connection import AsyncClient
from redline.jobs import JobEvent, JobState, enqueue, job_events
from redline.jobs.settling import JobOutcome
from tests.jobs import control_tasks as c
from tests.jobs.running import settler_of
from tests.jobs.test_control import Running, state_is, until


@pytest.fixture
async def worker(redis_url: str) -> AsyncIterator[Running]:
    running = Running(redis_url, ["c:jobs"])
    yield running
    await running.stop()


async def events_of(client: AsyncClient, queue: str, job: str) -> list[JobEvent]:
    return [e async for e in job_events(client, queue) if e.job == job]


async def test_a_retried_then_completed_job_shows_every_change_in_order(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    job = await enqueue(aredis, c.flaky, redis_url, "attempts")
    assert job is not None and await job.result(timeout=30) == "attempt 2"
    expected = [
        ("enqueued", 0, None),
        ("started", 1, None),
        ("progress", 1, 0.25),
        ("failed", 1, None),
        ("retried", 1, None),
        ("started", 2, None),
        ("progress", 2, 0.25),
        ("progress", 2, 1.0),
        ("completed", 2, None),
    ]
    seen = await until(lambda: _when_complete(aredis, job.id))
    assert [(e.event, e.attempt, e.progress) for e in seen] == expected
    assert "first attempt fails" in seen[3].message and seen[7].message == "done"
    status = await job.status()
    assert status is not None and status.state is JobState.COMPLETE
    assert status.attempts == 2 and status.progress == 1.0 and status.message == "done"
    assert status.enqueued_at and status.started_at and status.finished_at
    assert status.enqueued_at <= status.started_at <= status.finished_at


async def test_a_retry_that_starts_before_its_failure_is_settled_comes_after_it(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    """Once a failed job is given back, its retry can be popped and started while the
    settling of the failure still goes on (on a loaded machine it did): the stream still
    shows the failure before the retry's start. The failure's records are held here until the
    second attempt has begun."""
    settler = await until(lambda: settler_of(worker))
    record = settler._record

    async def held(outcomes: Sequence[JobOutcome]) -> None:
        await until(lambda: _attempts_are(aredis, 2), 30)
        await record(outcomes)

    settler._record = held  # type: ignore[method-assign]
    job = await enqueue(aredis, c.flaky, redis_url, "retried")
    assert job is not None and await job.result(timeout=60) == "attempt 2"
    seen = await until(lambda: _when_complete(aredis, job.id))
    order = [(e.event, e.attempt) for e in seen]
    assert order[3:6] == [("failed", 1), ("retried", 1), ("started", 2)]


async def _attempts_are(client: AsyncClient, n: int) -> bool:
    return await client.get("retried") == str(n).encode()


async def _when_complete(client: AsyncClient, job: str) -> list[JobEvent] | None:
    seen = await events_of(client, "c:jobs", job)
    return seen if seen and seen[-1].event == "completed" else None


async def test_a_cancelled_job_shows_every_change_in_order(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    job = await enqueue(aredis, c.hold, redis_url, "held")
    assert job is not None
    await until(lambda: state_is(job, JobState.RUNNING))  # written with the worker's next batch
    running = await job.status()
    assert running is not None and running.attempts == 1 and running.started_at
    assert await job.cancel()
    await until(lambda: state_is(job, JobState.CANCELLED))
    seen = await events_of(aredis, "c:jobs", job.id)
    assert [e.event for e in seen] == ["enqueued", "started", "cancelled"]


async def test_a_reader_restarted_mid_stream_misses_none(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    ids = []
    for n in range(40):
        job = await enqueue(aredis, c.mark, redis_url, "ran", n)
        assert job is not None
        ids.append(job.id)
    await until(lambda: _count(aredis, "ran", 40))
    total = 3 * 40  # enqueued, started, completed
    first: list[JobEvent] = []
    follower = job_events(aredis, "c:jobs", follow=True, block=0.2)
    async for event in follower:  # a reader that stops (is "restarted") part way
        first.append(event)
        if len(first) == 37:
            break
    await follower.aclose()
    rest: list[JobEvent] = []
    async with asyncio.timeout(20):
        async for event in job_events(aredis, "c:jobs", since=first[-1].id, follow=True):
            rest.append(event)
            if len(first) + len(rest) == total:
                break
    everything = [e.id for e in first + rest]
    assert len(set(everything)) == len(everything) == total
    assert everything == sorted(everything, key=_order)
    for job_id in ids:
        assert [e.event for e in first + rest if e.job == job_id] == [
            "enqueued",
            "started",
            "completed",
        ]


def _order(event_id: str) -> tuple[int, ...]:
    """An event id's place: its entry's (ms, seq), then its index in the entry (if packed)."""
    entry, _, index = event_id.partition(":")
    return (*map(int, entry.split("-")), int(index or 0))


async def _count(client: AsyncClient, key: str, n: int) -> bool:
    return bool(await client.llen(key) == n)  # type: ignore[misc]


async def test_current_job_outside_a_run_and_bad_progress_are_refused(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    from redline.errors import JobError
    from redline.jobs import current_job

    with pytest.raises(JobError, match="only available inside a task run by a worker"):
        current_job()
    job = await enqueue(aredis, c.bad_progress, 1.5)
    assert job is not None
    assert await job.result(timeout=20) == "JobError: progress 1.5 must be a number from 0 to 1"
