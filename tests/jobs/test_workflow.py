"""Workflows run by a real worker in this process: chains, groups, chords, a diamond, a
failure with its error callback, a cancel mid-run, a result too large, the blocking API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from redline.connection import AsyncClient
from redline.errors import WorkflowFailed
from redline.jobs import MemberState, chain, chord, enqueue, enqueue_sync, group, workflow
from redline.jobs.workflow import WorkflowKeys
from redline.queue import ReliableQueue
from tests.jobs import workflow_tasks as w
from tests.jobs.running import WorkerRunning, until


class Running(WorkerRunning):
    """A worker of the workflow tasks running in this event loop until `stop()`."""

    def __init__(self, url: str, queues: list[str]) -> None:
        super().__init__(w.tasks, url, queues, concurrency=8, grace=2)


@pytest.fixture
async def worker(redis_url: str) -> AsyncIterator[Running]:
    running = Running(redis_url, [w.Q])
    yield running
    await running.stop()


async def settled(client: AsyncClient, dead: int = 0) -> bool:
    """Nothing waits or runs; `dead` jobs were dead-lettered (a failed member's)."""
    info = await ReliableQueue(client).info(w.Q)
    return (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, dead)


async def test_a_chain_passes_each_result_on(aredis: AsyncClient, worker: Running) -> None:
    h = await enqueue(aredis, chain(w.double.s(3), w.double.s(), w.add.s(1), w.add.si(2, 2)))
    assert await h.result(timeout=30) == 4
    assert await h.results(timeout=1) == [6, 12, 13, 4]
    status = await h.status()
    assert status.state == "complete" and status.kind == "chain"
    assert all(m.dispatched_at and m.finished_at for m in status.members)


async def test_a_group_returns_results_in_member_order(
    aredis: AsyncClient, worker: Running
) -> None:
    h = await enqueue(aredis, group(w.double.s(i) for i in range(50)))
    assert await h.results(timeout=30) == [2 * i for i in range(50)]
    assert await h.result(timeout=1) == [2 * i for i in range(50)]


async def test_a_chord_sums_its_group(aredis: AsyncClient, worker: Running) -> None:
    h = await enqueue(aredis, chord(group(w.double.s(i) for i in range(20)), w.total.s()))
    assert await h.result(timeout=30) == sum(2 * i for i in range(20))


async def test_a_diamond_runs_each_member_once_in_order(
    aredis: AsyncClient, worker: Running
) -> None:
    diamond = workflow(
        a=w.double.s(1),
        b=w.double.s(),
        c=w.add.s(10),
        d=w.pair.s(),
        depends_on={"b": ["a"], "c": ["a"], "d": ["c", "b"]},
    )
    h = await enqueue(aredis, diamond)
    assert await h.result(timeout=30) == [[12, 4], None]  # d got [c, b] in depends_on order
    status = await h.status()
    times = {m.name: (m.dispatched_at or 0, m.finished_at or 0) for m in status.members}
    assert times["a"][1] <= min(times["b"][0], times["c"][0])
    assert max(times["b"][1], times["c"][1]) <= times["d"][0]
    assert status.members[3].depends_on == ("c", "b")


async def test_a_failure_skips_what_depends_on_it_and_calls_on_error_once(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    wf = workflow(
        a=w.double.s(1),
        b=w.boom.s(),
        c=w.double.s(),
        d=w.record.s(redis_url, "w:d"),
        depends_on={"b": ["a"], "c": ["b"], "d": ["a"]},
        on_error=w.record.s(redis_url, "w:errors"),
    )
    h = await enqueue(aredis, wf)
    with pytest.raises(WorkflowFailed, match="member 'b' failed: ValueError: boom") as failed:
        await h.result(timeout=30)
    assert failed.value.member == "b"
    await until(lambda: aredis.llen("w:errors"))
    await until(lambda: settled(aredis, dead=1))  # b, with its traceback
    status = await h.status()
    assert {m.name: m.state for m in status.members} == {
        "a": MemberState.DONE,
        "b": MemberState.FAILED,
        "c": MemberState.SKIPPED,
        "d": MemberState.DONE,  # independent of b: it finished
    }
    [error] = [json.loads(e) for e in await aredis.lrange("w:errors", 0, -1)]
    assert error["member"] == "b" and error["workflow"] == h.id and "boom" in error["error"]
    assert status.on_error is not None and status.on_error.state is MemberState.DONE
    assert await aredis.lrange("w:d", 0, -1) == [b"2"]


async def test_cancel_mid_run_cancels_the_running_member_and_the_rest(
    aredis: AsyncClient, redis_url: str, worker: Running
) -> None:
    h = await enqueue(aredis, chain(w.hold.s(redis_url, "w:h"), w.record.s(redis_url, "w:after")))
    await until(lambda: aredis.exists("w:h:started"))
    assert await h.cancel() is True
    await until(lambda: settled(aredis))  # the running member was cancelled where it ran
    status = await h.status()
    assert status.state == "cancelled"
    assert [m.state for m in status.members] == [MemberState.CANCELLED] * 2
    await aredis.set("w:h:go", 1)
    with pytest.raises(WorkflowFailed, match="cancelled"):
        await h.result(timeout=5)
    assert await aredis.llen("w:after") == 0
    await until(lambda: aredis.hget("{wf:jobs}:job-stats", "cancelled"))  # counted once
    assert await aredis.hget("{wf:jobs}:job-stats", "cancelled") == b"1"


async def test_a_result_too_large_fails_the_member_with_a_clear_error(
    aredis: AsyncClient, worker: Running
) -> None:
    h = await enqueue(aredis, chain(w.big.s(600_000), w.double.s()))
    with pytest.raises(WorkflowFailed, match="600002 bytes of JSON, more than the 524288"):
        await h.result(timeout=30)
    assert [m.state for m in (await h.status()).members] == ["failed", "skipped"]
    await until(lambda: settled(aredis, dead=1))


async def test_the_blocking_api(redis_url: str, worker: Running) -> None:
    client = redis.Redis.from_url(redis_url)

    def run() -> tuple[Any, Any, str]:
        h = enqueue_sync(client, chord([w.double.s(1), w.double.s(2)], w.total.s()))
        return h.result(timeout=30), h.results(timeout=1), h.status().state

    assert await asyncio.to_thread(run) == (6, [2, 4, 6], "complete")
    client.close()


async def test_nothing_is_left_but_the_state_that_expires(
    aredis: AsyncClient, worker: Running
) -> None:
    h = await enqueue(aredis, chord(group(w.double.s(i) for i in range(5)), w.total.s()))
    assert await h.result(timeout=30) == 20
    await until(lambda: settled(aredis))
    marker = "{wf:jobs}:job-wf:" + h.id

    async def ours() -> set[str]:  # once the last job's status is dropped (after its ack)
        found = {k.decode() for k in await aredis.keys("*" + h.id + "*")}
        return found if found - set(WorkflowKeys(h.id).all) == {marker} else set()

    for key in await until(ours):  # the state, and the dispatch markers beside the queue
        assert 0 < await aredis.ttl(key) <= 86_400
