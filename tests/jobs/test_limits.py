"""Priorities, limits, expiry, replace and debounce with an in-process worker on a real server
(the runs across killed worker processes are in test_limits_processes.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis

from redline.connection import AsyncClient
from redline.jobs import JobState, enqueue, enqueue_in, enqueue_many, gate_slots, job_keys
from redline.jobs.library import LIBRARY
from redline.jobs.limits import Gate
from redline.jobs.priority import Levels, levels_key, priority_key
from redline.queue import ReliableQueue
from tests.jobs import limit_tasks as lt
from tests.jobs.running import WorkerRunning, gone, until


class Running(WorkerRunning):
    """A worker of `tests.jobs.limit_tasks` over `queues` running in this event loop until
    `stop()` (the worker's default grace)."""

    def __init__(self, url: str, queues: Sequence[str], concurrency: int = 8) -> None:
        super().__init__(lt.tasks, url, queues, concurrency=concurrency, grace=10.0)


@pytest.fixture
async def started(redis_url: str) -> AsyncIterator[list[Running]]:
    running: list[Running] = []
    yield running
    for worker in running:
        await worker.stop()


async def drained(client: AsyncClient, *keys: str) -> bool:
    queue = ReliableQueue(client)
    for key in keys:
        info = await queue.info(key)
        if (info.waiting, info.inflight, info.delayed, info.dead) != (0, 0, 0, 0):
            return False
    return True


async def test_high_priority_jobs_start_before_the_backlog(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    sync = redis.Redis.from_url(redis_url)
    await enqueue_many(aredis, lt.prio, [((redis_url, "low"), {})] * 1000)
    started.append(Running(redis_url, ["l:prio"], concurrency=4))
    await until(lambda: aredis.llen("l:order"))  # the backlog is being worked off
    await enqueue_many(aredis, lt.prio.options(priority=9), [((redis_url, "high"), {})] * 50)
    before = sync.llen("l:order")  # low jobs started before the high ones were all enqueued
    await until(lambda: drained(aredis, "l:prio", priority_key("l:prio", 9)), 60)
    order = [tag.decode() for tag in sync.lrange("l:order", 0, -1)]
    assert order.count("high") == 50 and order.count("low") == 1000
    last_high = max(i for i, tag in enumerate(order) if tag == "high")
    # only the jobs already taken (at most one per slot) start between the enqueue and them
    assert order[before : last_high + 1].count("low") <= 4
    assert order[last_high + 1 :].count("low") > 900  # the rest of the backlog came after


async def test_a_priority_first_used_by_a_producer_is_picked_up(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    started.append(Running(redis_url, ["l:prio"]))
    job = await enqueue(aredis, lt.prio.options(priority=5), redis_url, "five")
    assert job is not None and await aredis.smembers(levels_key("l:prio")) == {b"5"}
    await until(lambda: aredis.llen("l:order"))
    assert await aredis.lrange("l:order", 0, -1) == [b"five"]
    await until(lambda: drained(aredis, priority_key("l:prio", 5)))


async def test_concurrency_cap_holds_and_waiting_is_not_an_attempt(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    jobs = await enqueue_many(aredis, lt.capped, [((redis_url, n, 0.1), {}) for n in range(30)])
    started += [Running(redis_url, ["l:cap"], concurrency=16) for _ in range(2)]
    await until(lambda: _count(aredis, "l:done", 30), 60)
    seen = [int(n) for n in await aredis.lrange("l:seen", 0, -1)]
    assert len(seen) == 30 and max(seen) == lt.CAP  # 32 slots, the cap used, never passed
    await until(lambda: drained(aredis, "l:cap"))
    assert all(job is not None for job in jobs)
    handles = [job for job in jobs if job is not None]

    async def recorded() -> bool:  # a job's record is written just after its ack
        return all([await job.record() is not None for job in handles])

    await until(recorded)
    for job in handles:
        record = await job.record()
        assert record is not None and record.attempts == 1  # waits were not attempts
    # All given back: the workers keep a finished job's slot free for `gate_slots.HOLD` for
    # their next job, then send it back in a task of its own — after the last record, maybe.
    slots = "{l:cap}:job-concurrency:" + lt.capped.name
    await until(lambda: gone(aredis, slots))


async def test_an_admission_sent_with_a_pop_is_answered_even_when_the_script_was_flushed(
    aredis: AsyncClient, redis_url: str
) -> None:
    """`Gate.ask`'s commands go out with a pop (`pop_after`, as the worker's pop ahead sends
    them); `Gate.answer` reads their replies. An EVALSHA (before the jobs' library is loaded on
    the client) that finds the script lost (a restart, SCRIPT FLUSH) answers NOSCRIPT, an FCALL
    that finds the library lost (FUNCTION FLUSH) that the function is missing: either way the
    admission is made again alone (loading what was lost), and decides as it would have."""
    await enqueue_many(aredis, lt.capped, [((redis_url, n), {}) for n in range(2 * lt.CAP)])
    queue = ReliableQueue(aredis)
    levels = Levels(["l:cap"], {"l:cap": {0}})
    gate = Gate(queue, lt.tasks, levels)
    first = await queue.pop(*levels.keys, count=lt.CAP)
    await aredis.script_flush()
    asking = gate.ask(first)
    assert asking.commands[0][0] == "EVALSHA"
    replies, ahead = await queue.pop_after(asking.commands, *levels.keys, count=lt.CAP)
    assert "NoScriptError" in repr(replies[0])
    assert await gate.answer(asking, replies) == first and len(ahead) == lt.CAP
    for d in first:  # their slots go back with the next admission
        gate.finish(d)
    await aredis.function_flush()
    asking = gate.ask(ahead)
    assert asking.commands[0][0] == "FCALL"
    replies, rest = await queue.pop_after(asking.commands, *levels.keys, count=lt.CAP)
    assert LIBRARY.missing(replies[0]) and rest == []
    assert await gate.answer(asking, replies) == ahead  # made again: the slots came back first
    for d in ahead:
        gate.finish(d)
    await gate.release(())
    assert not await aredis.exists("{l:cap}:job-concurrency:" + lt.capped.name)


async def test_the_gate_keeps_nothing_of_jobs_that_finished_or_never_started(
    aredis: AsyncClient, redis_url: str
) -> None:
    """A run cancelled before it started (a worker stopping) never takes its document from the
    gate: finishing the delivery drops it, with the slot, so a long-lived worker keeps no
    entry per such job (`Gate.documents` did)."""
    await enqueue_many(aredis, lt.capped, [((redis_url, n), {}) for n in range(lt.CAP + 2)])
    queue = ReliableQueue(aredis)
    levels = Levels(["l:cap"], {"l:cap": {0}})
    gate = Gate(queue, lt.tasks, levels)
    popped = await queue.pop(*levels.keys, count=lt.CAP + 2)
    admitted = await gate.admit(popped)
    assert len(admitted) == lt.CAP  # the rest wait for a slot
    assert set(gate.documents) == set(gate.held) == {(d.key, d.id) for d in admitted}
    assert gate.document(admitted[0]).task == lt.capped.name  # what a run takes; the rest none
    for d in admitted:  # as the worker's `_done` does for every run, started or not
        gate.finish(d)
    assert gate.documents == {} and gate.held == {}
    await gate.release(admitted)
    assert not await aredis.exists("{l:cap}:job-concurrency:" + lt.capped.name)


async def test_a_concurrency_key_caps_each_key_alone(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    calls = [((redis_url, key, n), {}) for n in range(3) for key in ("a", "b")]
    await enqueue_many(aredis, lt.per_key, calls)
    started.append(Running(redis_url, ["l:percap"], concurrency=8))
    await until(lambda: _count(aredis, "l:started", 6), 60)
    seen = [int(n) for n in await aredis.lrange("l:seen", 0, -1)]
    assert max(seen) == 2  # one per key at once: a and b side by side, never two of one key


async def test_rate_limits_per_key_are_independent_and_strict(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    calls = [((redis_url, key, n), {}) for n in range(5) for key in ("a", "b")]
    await enqueue_many(aredis, lt.keyed, calls)
    started.append(Running(redis_url, ["l:rkey"], concurrency=16))
    await until(lambda: _count(aredis, "l:started", 6), 30)
    await asyncio.sleep(2)  # a limiter that leaked would start more meanwhile
    names = {m.decode() for m in await aredis.smembers("l:started")}
    assert sorted(n[0] for n in names) == ["a"] * 3 + ["b"] * 3  # 3 a minute, per key
    # The rest wait, delayed; the six that ran are acked just after their side effect (not
    # within the 2 s above on a starved machine): waited for, bounded.
    await until(lambda: _counts_are(aredis, "l:rkey", (0, 0, 4)))


async def test_a_job_not_started_in_time_expires_unrun(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    late = await enqueue(aredis, lt.fleeting, redis_url, 1)
    await asyncio.sleep(0.7)  # past its 0.5 s, with no worker
    on_time = await enqueue(aredis, lt.fleeting.options(expires=60), redis_url, 2)
    assert late is not None and on_time is not None
    started.append(Running(redis_url, ["l:misc"]))
    await until(lambda: drained(aredis, "l:misc"))
    await until(lambda: aredis.sismember("l:ran-once", 2))
    assert await aredis.smembers("l:ran-once") == {b"2"}  # the late one never ran
    record = await late.record()
    assert record is not None and record.state is JobState.EXPIRED and record.attempts == 0
    stats = await until(lambda: _field(aredis, job_keys("l:misc").stats, b"expired"))
    assert stats == b"1"


async def test_a_retry_after_the_deadline_is_not_an_expiry(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    started.append(Running(redis_url, ["l:misc"]))
    job = await enqueue(aredis, lt.flaky, redis_url, 3)
    assert job is not None
    await until(lambda: aredis.sismember("l:ran-once", 3))  # it started in time: it runs again
    await until(lambda: drained(aredis, "l:misc"))
    assert await aredis.get("l:flaky") == b"2"
    assert not await aredis.hget(job_keys("l:misc").stats, "expired")  # type: ignore[misc]


async def test_replace_swaps_the_pending_jobs_arguments(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    for value in (1, 2, 3):
        await enqueue(aredis, lt.latest, redis_url, "k", value)
    later = [await enqueue_in(aredis, 60, lt.latest, redis_url, "s", v) for v in (4, 5)]
    assert await aredis.llen("l:misc") == 1  # one pending job per key, with the last arguments
    assert await aredis.zcard(job_keys("l:misc").scheduled) == 1
    due = await aredis.zrange(job_keys("l:misc").scheduled, 0, -1, withscores=True)
    assert b"[5]" not in due[0][0] and b'"s",5' in due[0][0]  # replaced, due time kept
    assert due[0][1] > time.time() + 50
    started.append(Running(redis_url, ["l:misc"]))
    await until(lambda: aredis.llen("l:ran"))
    await until(lambda: drained(aredis, "l:misc"))
    assert await aredis.lrange("l:ran", 0, -1) == [b"3"]
    assert later[1] is not None


async def test_debounce_runs_only_the_last_of_a_burst(
    aredis: AsyncClient, redis_url: str, started: list[Running]
) -> None:
    # The burst before the worker: with one running, its promoter moved the pending job onto
    # the queue (and ran it) whenever a starved machine spread the enqueues past `debounce`
    # (seen under CPU hogs: no job left scheduled after the five).
    jobs = [await enqueue(aredis, lt.settled, redis_url, "d", v) for v in range(5)]
    assert await aredis.zcard(job_keys("l:misc").scheduled) == 1
    started.append(Running(redis_url, ["l:misc"]))
    last = jobs[-1]
    assert last is not None and await last.result(timeout=30) == 4
    await until(lambda: drained(aredis, "l:misc"))
    assert await aredis.lrange("l:ran", 0, -1) == [b"4"]


async def _counts_are(client: AsyncClient, key: str, counts: tuple[int, int, int]) -> bool:
    """Whether queue `key` has `counts` jobs (waiting, in flight, delayed)."""
    info = await ReliableQueue(client).info(key)
    return (info.waiting, info.inflight, info.delayed) == counts


async def _count(client: AsyncClient, key: str, n: int) -> bool:
    return int(await client.scard(key)) >= n  # type: ignore[misc]


async def _field(client: AsyncClient, key: str, field: bytes) -> Any:
    return await client.hget(key, field)  # type: ignore[misc]


async def test_slots_left_for_the_next_admission_go_back_when_the_worker_stops(
    aredis: AsyncClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of fast jobs leaves its finished jobs' slots for its next admission
    (`Returns.hold`); when none comes because it stops, `stop` gives them back."""
    monkeypatch.setattr(gate_slots, "HOLD", 600.0)  # no timer sends them meanwhile
    slots = "{l:cap}:job-concurrency:" + lt.capped.name
    worker = Running(redis_url, ["l:cap"], concurrency=8)
    worker.worker.ahead.mean_run = 0.0  # its jobs have been fast
    await enqueue_many(aredis, lt.capped, [((redis_url, n, 0), {}) for n in range(lt.CAP)])
    await until(lambda: _count(aredis, "l:done", lt.CAP), 30)
    await until(lambda: drained(aredis, "l:cap"))
    # Finished and acked, their slots held for later: as many as the jobs when one pop took them
    # all, fewer when a later pop's job started on a slot an earlier one had freed (held slots).
    assert 1 <= await aredis.zcard(slots) <= lt.CAP
    await worker.stop()
    assert not await aredis.exists(slots)


async def test_run_jobs_gives_each_capped_jobs_slot_back_before_the_next(
    aredis: AsyncClient, redis_url: str
) -> None:
    """`run_jobs` (the worker's `run_once`) gives a capped job's slot back when it ends: with a
    cap of one, every job of the key runs, one after the other, and no slot is left held."""
    from redline.testing import run_jobs

    for n in range(3):
        await enqueue(aredis, lt.per_key, redis_url, "k", n)
    runs = await run_jobs(aredis, "l:percap", [lt.per_key])
    assert [run.ok for run in runs] == [True] * 3
    assert not await aredis.exists("{l:percap}:job-concurrency:" + lt.per_key.name + ":k")
