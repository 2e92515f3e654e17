"""Concurrency slots a worker holds between jobs (`redline.jobs.held_slots`), with in-process
workers on a real server (the cap across SIGKILLed worker processes: test_limits_processes)."""

from __future__ import annotations

import pytest

from redline.connection import AsyncClient
from redline.jobs import enqueue_many, gate_slots, held_slots
from redline.jobs.held_slots import Slots
from tests.jobs import limit_tasks as lt
from tests.jobs.running import gone, until
from tests.jobs.test_limits import Running, _count, drained

SLOTS = "{l:hold}:job-concurrency:" + lt.held_quick.name


async def test_a_worker_starts_its_next_capped_jobs_on_the_slots_it_holds(
    aredis: AsyncClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drain of 200 no-ops under a cap of 4 by a worker of 4 run slots makes one admission
    call: the first batch's; every later job starts on a slot the worker kept from the last
    (no call: `Gate.admit_held`). The slots stay in the set, named for the worker, while it
    holds them, and go back when it stops."""
    monkeypatch.setattr(gate_slots, "HOLD", 600.0)  # kept however slow the machine is
    jobs = 200
    await enqueue_many(aredis, lt.held_quick, [((redis_url, n), {}) for n in range(jobs)])
    worker = Running(redis_url, ["l:hold"], concurrency=lt.CAP)
    try:
        await until(lambda: _listed(aredis, "l:ran", jobs), 60)
        await until(lambda: drained(aredis, "l:hold"))
        assert worker.worker.gate.slots.calls == 1  # one admission for 200 jobs
        held = await aredis.zrange(SLOTS, 0, -1)
        assert len(held) == lt.CAP and all(name.startswith(b"@") for name in held)
    finally:
        await worker.stop()
    assert sorted(int(n) for n in await aredis.lrange("l:ran", 0, -1)) == list(range(jobs))
    assert not await aredis.exists(SLOTS)  # given back at stop


async def test_slots_kept_free_go_back_after_a_short_hold(
    aredis: AsyncClient, redis_url: str
) -> None:
    """With nothing more to run, the slots a worker kept go back `HOLD` after their jobs."""
    await enqueue_many(aredis, lt.held_quick, [((redis_url, n), {}) for n in range(8)])
    worker = Running(redis_url, ["l:hold"], concurrency=lt.CAP)
    try:
        await until(lambda: _listed(aredis, "l:ran", 8), 60)
        await until(lambda: drained(aredis, "l:hold"))
        await until(lambda: gone(aredis, SLOTS))
        assert worker.worker.gate.slots.owned == {}
    finally:
        await worker.stop()


async def test_a_job_waiting_on_another_worker_gets_a_slot_while_the_holder_has_a_backlog(
    aredis: AsyncClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A holds the cap's slots and has a long backlog; worker B's jobs find the cap
    full and wait. A's next check (`held_slots.CHECK`) says jobs wait: A gives its slots back
    as its jobs end instead of reusing them, and B runs jobs while A's backlog is far from
    done. The cap holds throughout."""
    monkeypatch.setattr(gate_slots, "HOLD", 600.0)  # A would keep its slots for good
    jobs = 600
    calls = [((redis_url, n, 0.05), {}) for n in range(jobs)]
    await enqueue_many(aredis, lt.held_slow, calls)
    a = Running(redis_url, ["l:hold"], concurrency=lt.CAP)
    b: Running | None = None
    try:
        await until(lambda: _count(aredis, "l:done", 1), 60)
        b = Running(redis_url, ["l:hold"], concurrency=lt.CAP)
        await until(lambda: _completed(b), 60)
        done = await aredis.scard("l:done")
        assert done < jobs // 2, done  # A's backlog was still there (~8 s of it, alone)
        await until(lambda: _count(aredis, "l:done", jobs), 120)
    finally:
        await a.stop()
        if b is not None:
            await b.stop()
    seen = [int(n) for n in await aredis.lrange("l:seen", 0, -1)]
    assert len(seen) >= jobs and max(seen) <= lt.CAP


async def test_a_slot_reclaimed_meanwhile_is_forgotten_and_waiters_stop_reuse(
    aredis: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Slots.check` extends the slots held; one the server no longer has (reclaimed while
    the worker stalled) is forgotten, free or not; a limit with jobs waiting takes its free
    slots back (queued to go) and lends none until none wait."""
    # No sweep of idle slots meanwhile: its release would wake (pop) the waiter put below.
    monkeypatch.setattr(gate_slots, "HOLD", 600.0)
    slots_key, waiters = "{q}:job-concurrency:t", "{q}:job-concurrency-next:t"
    held = ("q", (slots_key, waiters))
    returns = gate_slots.Returns(aredis)
    slots = Slots(returns)
    slots.keeps = lambda: True
    for name in ("@w.1:1", "@w.1:2", "@w.1:3"):
        slots.own(held, name)
    await aredis.zadd(slots_key, {"@w.1:1": 5, "@w.1:3": 5})  # "@w.1:2" was reclaimed
    slots.done(held, "@w.1:1")
    slots.done(held, "@w.1:2")
    await slots.check(aredis, 30_000)
    assert slots.owned == {held: {"@w.1:1", "@w.1:3"}}
    assert [n for n, _ in slots.free[held]] == ["@w.1:1"]
    assert (await aredis.zscore(slots_key, "@w.1:3") or 0) > 10**12  # extended
    await aredis.rpush(waiters, "0:9:0")
    await slots.check(aredis, 30_000)
    assert held in slots.contended and slots.take(held) is None
    assert returns.queued == {"q": {(slots_key, waiters): ["@w.1:1"]}}
    slots.done(held, "@w.1:3")  # goes back as its job ends
    assert returns.queued == {"q": {(slots_key, waiters): ["@w.1:1", "@w.1:3"]}}
    assert slots.owned == {}
    await returns.send()
    assert not await aredis.exists(slots_key)


async def _listed(client: AsyncClient, key: str, n: int) -> bool:
    return bool(await client.llen(key) >= n)  # type: ignore[misc]


async def _completed(running: Running) -> bool:
    return running.worker.completed > 0


async def test_a_worker_spends_starts_taken_ahead_with_no_admission_call(
    aredis: AsyncClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a rate limit far above the drain, each admission takes ahead as many starts as
    the worker asked for lately, and the next batches start on them: 400 no-ops at 8 a batch
    (50 batches) take a handful of admission calls, each asking for about twice the last."""
    monkeypatch.setattr(held_slots, "SPEND", 600.0)  # spendable however slow the machine is
    jobs = 400
    await enqueue_many(aredis, lt.quick_async, [((redis_url, n), {}) for n in range(jobs)])
    worker = Running(redis_url, ["l:ahead"], concurrency=8)
    try:
        await until(lambda: _listed(aredis, "l:ran", jobs), 60)
        assert worker.worker.gate.slots.calls <= 12, worker.worker.gate.slots.calls
    finally:
        await worker.stop()
    assert sorted(int(n) for n in await aredis.lrange("l:ran", 0, -1)) == list(range(jobs))


async def test_starts_taken_ahead_keep_any_one_second_window_within_the_limit_and_burst(
    aredis: AsyncClient, redis_url: str
) -> None:
    """Two workers drain a 40/s limit whose admissions take starts ahead (up to 5 a call),
    spent within `SPEND`: the starts in any one-second window stay within N + burst (80),
    and the workers did start jobs on starts taken ahead."""
    jobs = 200
    await enqueue_many(aredis, lt.rated_ahead, [((redis_url, n), {}) for n in range(jobs)])
    workers = [Running(redis_url, ["l:rate40"], concurrency=8) for _ in range(2)]
    try:
        await until(lambda: _listed(aredis, "l:starts", jobs), 60)
        spent = [w.worker.gate.starts.spent for w in workers]
    finally:
        for worker in workers:
            await worker.stop()
    starts = sorted(float(t) for t in await aredis.lrange("l:starts", 0, -1))
    busiest = max(sum(1 for t in starts if s <= t < s + 1) for s in starts)
    assert busiest <= 80, busiest
    assert sum(spent) > 0
