"""Popping ahead (`redline.jobs.ahead`): while a batch of limited jobs is admitted, the worker
leases its next batch, and admits it once run slots are free; jobs held ahead go back to the
queue when the worker stops. The admission is held open by the test (the worker's `_admit`
seam waits for an event before the real admission runs) so the state can be looked at."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from redline.connection import AsyncClient
from redline.jobs import enqueue_many, held_slots, pause_queue, resume_queue
from redline.jobs.ahead import FAST, Ahead
from redline.queue import Delivery, ReliableQueue
from tests.jobs import limit_tasks as lt
from tests.jobs.running import holds, until
from tests.jobs.test_limits import Running

C = 8  # the worker's concurrency


class Held(Running):
    """A worker of `tests.jobs.limit_tasks` whose jobs have been fast (so it pops ahead) and
    whose admissions wait for `opened`."""

    def __init__(self, url: str) -> None:
        super().__init__(url, ["l:ahead"], concurrency=C)
        self.opened = asyncio.Event()
        self.worker.ahead.mean_run = 0.0
        admit = self.worker._admit

        async def held_open(popped: Sequence[Delivery]) -> None:
            await self.opened.wait()
            await admit(popped)

        self.worker._admit = held_open  # type: ignore[method-assign]


@pytest.fixture
async def held(redis_url: str) -> AsyncIterator[list[Held]]:
    running: list[Held] = []
    yield running
    for worker in running:
        worker.opened.set()
        await worker.stop()


async def _inflight(client: AsyncClient, n: int) -> bool:
    return (await ReliableQueue(client).info("l:ahead")).inflight == n


async def test_the_next_batch_is_leased_while_one_is_admitted(
    aredis: AsyncClient, redis_url: str, held: list[Held]
) -> None:
    await enqueue_many(aredis, lt.quick, [((redis_url, n), {}) for n in range(5 * C)])
    held.append(worker := Held(redis_url))
    await until(lambda: _inflight(aredis, 2 * C))  # C in admission, C popped ahead
    await until(lambda: holds(len(worker.worker.ahead.held) == C))  # once its reply is read
    assert worker.worker.active == C and worker.worker.ahead.admitting == C
    # judged while they wait (decoded, limits found): their admission only sends the call
    assert set(worker.worker.gate.judged) == {(d.key, d.id) for d in worker.worker.ahead.held}
    worker.opened.set()
    await until(lambda: _ran(aredis, 5 * C), 30)
    ran = [int(n) for n in await aredis.lrange("l:ran", 0, -1)]
    assert sorted(ran) == list(range(5 * C))  # each once
    await until(lambda: _inflight(aredis, 0))
    assert worker.worker.ahead.held == [] and worker.worker.ahead.admitting == 0
    assert worker.worker.gate.judged == {} and worker.worker.gate.documents == {}


async def test_jobs_popped_ahead_go_back_unrun_when_the_worker_stops(
    aredis: AsyncClient, redis_url: str, held: list[Held]
) -> None:
    await enqueue_many(aredis, lt.quick, [((redis_url, n), {}) for n in range(2 * C)])
    first = Held(redis_url)
    await until(lambda: _inflight(aredis, 2 * C))
    stopping = asyncio.create_task(first.stop())  # stop waits for the admission in hand
    first.opened.set()
    await stopping
    assert await aredis.llen("l:ran") == C  # the batch admitted ran; the one ahead did not
    assert first.worker.gate.judged == {}  # what was judged of them is not kept
    info = await ReliableQueue(aredis).info("l:ahead")
    assert (info.inflight, info.waiting + info.delayed) == (0, C)  # back, due now
    held.append(Held(redis_url))
    held[-1].opened.set()
    await until(lambda: _ran(aredis, 2 * C), 30)
    assert sorted(int(n) for n in await aredis.lrange("l:ran", 0, -1)) == list(range(2 * C))


async def test_jobs_popped_ahead_go_back_unrun_when_their_queue_is_paused(
    aredis: AsyncClient, redis_url: str, held: list[Held]
) -> None:
    await enqueue_many(aredis, lt.quick, [((redis_url, n), {}) for n in range(2 * C)])
    held.append(worker := Held(redis_url))
    await until(lambda: _inflight(aredis, 2 * C))
    await pause_queue(aredis, "l:ahead")
    await until(lambda: holds("l:ahead" in worker.worker.runs.control.paused))
    worker.opened.set()  # the batch in admission was in hand: it runs; the one ahead not
    await until(lambda: _ran(aredis, C))
    await until(lambda: _inflight(aredis, 0))
    info = await ReliableQueue(aredis).info("l:ahead")
    assert await aredis.llen("l:ran") == C and info.waiting + info.delayed == C
    assert worker.worker.gate.judged == {}  # given back: what was judged of them is dropped
    await resume_queue(aredis, "l:ahead")
    await until(lambda: _ran(aredis, 2 * C), 30)
    assert sorted(int(n) for n in await aredis.lrange("l:ran", 0, -1)) == list(range(2 * C))


async def test_a_batch_held_ahead_is_admitted_in_one_round_trip_with_the_next_pop_ahead(
    aredis: AsyncClient, redis_url: str, held: list[Held], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Starts taken ahead expire at once: every batch goes through the admission, none starts
    # on starts the worker holds (jobs.held_slots).
    monkeypatch.setattr(held_slots, "SPEND", 0.0)
    await enqueue_many(aredis, lt.quick_async, [((redis_url, n), {}) for n in range(8 * C)])
    held.append(worker := Held(redis_url))
    await until(lambda: _inflight(aredis, 2 * C))  # C in admission (held open), C ahead
    worker.opened.set()
    await until(lambda: _ran(aredis, 8 * C), 30)
    ran = [int(n) for n in await aredis.lrange("l:ran", 0, -1)]
    assert sorted(ran) == list(range(8 * C))  # each once
    # The batches held ahead were admitted with the next pop ahead (`Worker._ride`), not by
    # `_admit` (held open above: only the first batch went that way).
    assert worker.worker.ahead.rode >= 3
    await until(lambda: _inflight(aredis, 0))
    assert worker.worker.ahead.held == [] and worker.worker.ahead.admitting == 0
    assert worker.worker.gate.judged == {} and worker.worker.gate.documents == {}


async def _ran(client: AsyncClient, n: int) -> bool:
    return bool(await client.llen("l:ran") >= n)


def test_a_worker_pops_ahead_once_per_admission_while_its_jobs_are_fast() -> None:
    ahead = Ahead()
    ahead.admitting_now(64)
    assert ahead.wanted() == 0  # not fast until jobs have shown it
    for _ in range(100):
        ahead.ran(0.001)
    assert ahead.mean_run < FAST and ahead.wanted() == 64 and ahead.wanted(10) == 10
    ahead.keep([])  # a pop ahead that found nothing is not repeated before the next admission
    assert ahead.wanted() == 0
    ahead.admitted(64)
    ahead.admitting_now(32)
    assert ahead.wanted() == 32
    for _ in range(100):
        ahead.ran(1.0)
    assert ahead.wanted() == 0  # slow jobs: what waits stays in Redis for any worker
