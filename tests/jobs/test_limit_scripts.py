"""The limit, priority and replace scripts, each on its own against a real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from redline.connection import AsyncClient, connect
from redline.errors import ServerFullError
from redline.jobs import enqueue
from redline.jobs.admission import Admission, limits_of
from redline.jobs.admission import verdicts as parse_verdicts
from redline.jobs.events import JobEvent
from redline.jobs.library import LIBRARY
from redline.jobs.limits import Gate, limit_keys
from redline.jobs.options import Rate
from redline.jobs.priority import Levels, priority_key
from redline.jobs.usage import limit_use, limits_key, member, rate_starts
from redline.queue import ReliableQueue
from redline.queue.core import keys_of
from redline.scripting.scripts import run
from tests.jobs import limit_tasks as lt
from tests.servers import ServerProcess

LEASE = 30_000


async def _admit(
    client: AsyncClient, d: object, cap: int, rate: int = 0, register: tuple[str, str] = ("", "")
) -> list[object]:
    """`job_admit` on one delivery of "q", under task "t"'s cap and rate (per minute)."""
    [verdict] = await _admit_many(client, [d], cap, rate, register)
    return verdict


async def _admit_many(
    client: AsyncClient,
    deliveries: list[Any],
    cap: int,
    rate: int = 0,
    register: tuple[str, str] = ("", ""),
    releases: tuple[str, ...] = (),
) -> list[list[object]]:
    slots = limit_keys("q", "concurrency", "t", None)
    log = limit_keys("q", "rate", "t", None)
    call = Admission("q", {slots: list(releases)})
    for described in register:
        call.register(described)
    for d in deliveries:
        call.add(d, 0, limits_of(cap, slots, Rate(rate, 60_000) if rate else None, log))
    keys, args = call.call(LEASE)
    found = parse_verdicts(await LIBRARY.call(client, "job_admit", keys, args))
    return [[code, ms, why] if code == 0 else [code] for code, ms, why in found]


async def _starts(client: AsyncClient, log: str) -> int:
    """The starts `log` holds, read as `redline jobs limits` reads them."""
    first, last = await client.zrange(log, 0, 0), await client.zrange(log, -1, -1)
    members = await client.zcard(log)
    return rate_starts(first[0] if first else None, last[0] if last else None, members)


def _release_keys(slots: tuple[str, str]) -> list[str]:
    levels = [keys_of(priority_key("q", p)) for p in range(10)]
    return [*(k.delayed for k in levels), *(k.deliveries for k in levels), *slots]


async def test_a_full_cap_puts_the_job_back_without_an_attempt(aredis: AsyncClient) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b")
    first, second = await queue.pop("q", count=2)
    assert await _admit(aredis, first, cap=1) == [1]
    refused = await _admit(aredis, second, cap=1)
    assert refused[0] == 0 and refused[2] == "concurrency" and 0 < int(refused[1]) <= LEASE
    info = await queue.info("q")
    assert (info.inflight, info.delayed) == (1, 1)
    assert await aredis.hget(keys_of("q").deliveries, second.id) == b"0"  # not an attempt
    assert await _admit(aredis, second, cap=1) == [-1]  # no longer held: stale
    slots = limit_keys("q", "concurrency", "t", None)
    waiters = await aredis.lrange(slots[1], 0, -1)
    assert waiters == [f"0:{second.id}:0".encode()]
    # the first one finishes: its slot is given back and the waiting one is due now
    assert await run(aredis, "job_slot_release", _release_keys(slots), [1, first.id]) == 1
    assert await aredis.zcard(slots[0]) == 0
    [again] = await queue.pop("q")
    assert again.id == second.id and again.deliveries == 1  # its first attempt, still
    assert await _admit(aredis, again, cap=1) == [1]


async def test_a_waiter_whose_count_changed_is_not_woken(aredis: AsyncClient) -> None:
    slots = limit_keys("q", "concurrency", "t", None)
    await aredis.rpush(slots[1], "0:7:2", "junk", "0:8:0")
    await aredis.zadd(keys_of("q").delayed, {"7": 10**13, "8": 10**13})
    await aredis.hset(keys_of("q").deliveries, mapping={"7": 3, "8": 0})
    assert await run(aredis, "job_slot_release", _release_keys(slots), [1, "1"]) == 1
    assert await aredis.zscore(keys_of("q").delayed, "7") == 10**13  # its count moved on
    assert (await aredis.zscore(keys_of("q").delayed, "8") or 0) < 10**13  # woken
    assert await aredis.llen(slots[1]) == 0


async def test_extend_keeps_only_held_slots_and_names_the_lost(aredis: AsyncClient) -> None:
    slots, waiters = limit_keys("q", "concurrency", "t", None)
    await aredis.zadd(slots, {"1": 5})
    assert await run(aredis, "job_slot_extend", [slots, waiters], [LEASE, 2, "1", "2"]) == [
        b"0",
        b"2",
    ]
    assert (await aredis.zscore(slots, "1") or 0) > 10**12 and await aredis.zcard(slots) == 1


async def test_extend_says_which_limits_have_jobs_waiting(aredis: AsyncClient) -> None:
    """A worker holding slots learns from its extend that jobs wait for one (it then gives
    its free slots back rather than reusing them: jobs.held_slots)."""
    a = limit_keys("q", "concurrency", "t", "a")
    b = limit_keys("q", "concurrency", "t", "b")
    await aredis.zadd(a[0], {"@w.1:1": 5})
    await aredis.zadd(b[0], {"@w.1:2": 5})
    await aredis.rpush(b[1], "0:7:0")
    assert await run(aredis, "job_slot_extend", [*a, *b], [LEASE, 1, "@w.1:1", 1, "@w.1:2"]) == [
        b"01"
    ]


async def test_a_rate_limit_counts_starts_in_a_window(aredis: AsyncClient) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b", b"c")
    a, b, c = await queue.pop("q", count=3)
    assert await _admit(aredis, a, cap=0, rate=2) == [1]
    assert await _admit(aredis, b, cap=0, rate=2) == [1]
    refused = await _admit(aredis, c, cap=0, rate=2)
    assert refused[0] == 0 and refused[2] == "rate" and 59_000 < int(refused[1]) <= 60_000
    log = limit_keys("q", "rate", "t", None)
    assert await _starts(aredis, log[0]) == 2 and await aredis.get(log[1])  # the next is spread


async def test_replace_swaps_in_place_and_enqueues_when_not_pending(aredis: AsyncClient) -> None:
    keys = ["q", "{q}:job-scheduled", "{q}:job-unique:k", "{q}:job-pending:k", "{q}:prio"]
    assert await run(aredis, "job_replace", keys, ["d1", "1", 60, "", "0", 0]) == b"enqueued"
    await aredis.lpush("q", "other")
    assert await run(aredis, "job_replace", keys, ["d2", "2", 60, "", "0", 0]) == b"replaced"
    assert await aredis.lrange("q", 0, -1) == [b"other", b"d2"]  # d1's place, d2's document
    assert await aredis.get(keys[2]) == b"2"
    await aredis.rpop("q")  # taken by a worker: no longer pending
    assert await run(aredis, "job_replace", keys, ["d3", "3", 60, "", "0", 0]) == b"enqueued"
    assert await aredis.lrange("q", 0, -1) == [b"d3", b"other"]


async def test_debounce_moves_the_due_time(aredis: AsyncClient) -> None:
    keys = ["q", "{q}:job-scheduled", "{q}:job-unique:k", "{q}:job-pending:k", "{q}:prio"]
    await run(aredis, "job_replace", keys, ["d1", "1", 60, "100.0", "1", 0])
    assert await run(aredis, "job_replace", keys, ["d2", "2", 60, "200.0", "1", 0]) == b"replaced"
    assert await aredis.zrange(keys[1], 0, -1, withscores=True) == [(b"d2", 200.0)]
    await run(aredis, "job_replace", keys, ["d3", "3", 60, "300.0", "0", 0])  # replace: kept
    assert await aredis.zrange(keys[1], 0, -1, withscores=True) == [(b"d3", 200.0)]


async def test_enqueue_many_holds_a_key_once_per_batch(aredis: AsyncClient) -> None:
    keys = ["{q}:priority:2", "{q}:job-scheduled:2", "{q}:job-priorities", "{q}:job-events"]
    keys += ["{q}:job:1", "{q}:job:2", "{q}:job:3", "{q}:job-unique:k"]
    args = [2, 60, "", 100, "t", "waiting", 600, 32, "a", "1", 1, "b", "2", 1, "c", "3", 0]
    assert await run(aredis, "job_enqueue_many", keys, args) == [b"", b"1", b""]
    assert await aredis.lrange(keys[0], 0, -1) == [b"c", b"a"]
    assert await aredis.smembers(keys[2]) == {b"2"}
    [(entry, fields)] = await aredis.xrange(keys[3])  # the two events, in one entry
    assert [(e.job, e.event, e.task) for e in JobEvent.in_entry("q", entry, fields)] == [
        ("1", "enqueued", "t"),
        ("3", "enqueued", "t"),
    ]
    assert await aredis.hget(keys[4], "state") == b"waiting" and not await aredis.exists(keys[5])
    assert 0 < await aredis.ttl(keys[6]) <= 600


def test_levels_order_keys_highest_first_and_map_them_back() -> None:
    from redline.jobs.priority import Levels

    levels = Levels(["a", "b"], {"a": [0, 3], "b": [9]})
    assert levels.keys == ["{b}:priority:9", "{a}:priority:3", "a", "b"]
    assert levels.keys_for(["a"]) == ["{a}:priority:3", "a"]
    assert levels.queue_of("{b}:priority:9") == "b" and levels.priority_of("{a}:priority:3") == 3
    assert levels.queue_of("other") == "other"


async def test_admitting_registers_the_limits_met_and_drops_old_ones(aredis: AsyncClient) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b", b"c")
    first, second, third = await queue.pop("q", count=3)
    await aredis.zadd(limits_key("q"), {member("concurrency", "old", None, 1): 1})  # in 1970
    capped, paced = member("concurrency", "t", None, 2), member("rate", "t", None, 5, 60_000)
    assert await _admit(aredis, first, cap=2, rate=5, register=(capped, paced)) == [1]
    assert set(await aredis.zrange(limits_key("q"), 0, -1)) == {capped.encode(), paced.encode()}
    assert await _admit(aredis, second, cap=2, rate=5) == [1]  # not sent again: no write
    refused = await _admit(aredis, third, cap=2, rate=5)
    assert refused[0] == 0  # the cap is full
    uses = {(u.kind, u.used, u.limit, u.waiting, u.per) for u in await limit_use(aredis, "q")}
    assert uses == {("concurrency", 2, 2, 1, "running"), ("rate", 2, 5, 0, "per 60s")}


async def test_a_cap_changed_since_is_read_once_with_its_newest_limit(aredis: AsyncClient) -> None:
    key, now = limits_key("q"), time.time() * 1000
    await aredis.zadd(key, {member("concurrency", "t", "acme", 2): now - 1})
    await aredis.zadd(key, {member("concurrency", "t", "acme", 3): now})
    await aredis.zadd(key, {"not json": now, '["other"]': now})
    [use] = await limit_use(aredis, "q")
    assert (use.task, use.key, use.limit, use.used) == ("t", "acme", 3, 0)


async def test_one_call_decides_a_whole_batch_and_keeps_the_admitted_batched(
    aredis: AsyncClient,
) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b", b"c", b"d")
    popped = await queue.pop("q", count=4)
    stale = msgspec.structs.replace(popped[3], deliveries=7)
    verdicts = await _admit_many(aredis, [*popped[:3], stale], cap=2)
    assert [v[0] for v in verdicts] == [1, 1, 0, -1]
    assert verdicts[2][2] == "concurrency"
    slots = limit_keys("q", "concurrency", "t", None)
    assert set(await aredis.zrange(slots[0], 0, -1)) == {
        popped[0].id.encode(),
        popped[1].id.encode(),
    }
    assert await aredis.lrange(slots[1], 0, -1) == [f"0:{popped[2].id}:0".encode()]
    info = await queue.info("q")
    assert (info.inflight, info.delayed) == (3, 1)  # the refused one waits, not an attempt
    assert await aredis.hget(keys_of("q").deliveries, popped[2].id) == b"0"
    # the admitted ones stay in their batch: not a field of their own
    assert await aredis.hget(keys_of("q").deliveries, popped[0].id) is None
    assert sorted(await queue.ack(popped[0], popped[3])) == sorted([popped[0].id, popped[3].id])
    # the next call gives back the first one's slot first: the waiting job is due now
    assert await _admit_many(aredis, [], cap=2, releases=(popped[0].id,)) == []
    assert await aredis.zcard(slots[0]) == 1 and await aredis.llen(slots[1]) == 0
    [again] = await queue.pop("q")
    assert (again.id, again.deliveries) == (popped[2].id, 1)
    assert await _admit_many(aredis, [again], cap=2) == [[1]]


async def test_a_popped_batch_is_named_by_its_head_and_judged_as_it_is_now(
    aredis: AsyncClient,
) -> None:
    """An admission names the batch its deliveries were popped in by its ``n:id:token``, so
    the script finds them held by the batch's head alone while the batch is as its pop left it
    (all of it asked about, or part); a batch changed since (one of its messages acked) is
    judged job by job."""
    queue = ReliableQueue(aredis)
    slots = limit_keys("q", "concurrency", "t", None)
    await queue.push("q", b"a", b"b", b"c", b"d")
    popped = await queue.pop("q", count=4)
    batch = popped[0].batch
    assert batch is not None

    def whole_named(deliveries: list[Any]) -> str:
        call = Admission("q")
        for d in deliveries:
            call.add(d, 0, limits_of(5, slots, None, slots))
        _, args = call.call(LEASE)
        return str(args[args.index(batch.name) + 1])

    assert whole_named(popped) == whole_named(popped[:1]) == batch.whole
    assert await _admit_many(aredis, popped[:1], cap=5) == [[1]]  # part: the batch is intact
    assert await queue.ack(popped[1]) == [popped[1].id]  # the batch holds three now
    assert await _admit_many(aredis, popped, cap=5) == [[1], [-1], [1], [1]]
    assert set(await aredis.zrange(slots[0], 0, -1)) == {popped[i].id.encode() for i in (0, 2, 3)}


async def test_a_batch_over_the_rate_admits_up_to_it_in_order(aredis: AsyncClient) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b", b"c", b"d")
    popped = await queue.pop("q", count=4)
    verdicts = await _admit_many(aredis, popped, cap=0, rate=2)
    assert [v[0] for v in verdicts] == [1, 1, 0, 0]
    assert {v[2] for v in verdicts[2:]} == {"rate"}
    log = limit_keys("q", "rate", "t", None)
    assert await _starts(aredis, log[0]) == 2
    assert await aredis.zcard(log[0]) == 1  # one member for the call's starts
    assert (await queue.info("q")).delayed == 2


async def test_a_redelivered_job_keeps_its_slot_and_a_cap_counts_it_once(
    aredis: AsyncClient,
) -> None:
    queue = ReliableQueue(aredis, lease=0.05)
    await queue.push("q", b"a")
    [first] = await queue.pop("q")
    assert await _admit_many(aredis, [first], cap=1) == [[1]]
    slots = limit_keys("q", "concurrency", "t", None)
    await aredis.zadd(slots[0], {first.id: 10**14})  # its worker died; the slot outlives it
    again = None
    for _ in range(400):  # a pop recovers it once its lease has lapsed
        popped = await queue.pop("q")
        if popped:
            [again] = popped
            break
        await asyncio.sleep(0.05)
    assert again is not None
    assert again.deliveries == 2
    assert await _admit_many(aredis, [again], cap=1) == [[1]]
    assert await aredis.zcard(slots[0]) == 1


async def test_a_worker_names_its_slots_and_a_redelivery_counts_afresh(
    aredis: AsyncClient,
) -> None:
    """A call with a prefix names each slot it takes prefix + the job's id (the worker keeps
    it between jobs: jobs.held_slots); a redelivered job then holds no slot by its id, so it
    is counted as any job is (a slot named by its id is an earlier worker's: see above)."""
    queue = ReliableQueue(aredis, lease=0.05)
    slots = limit_keys("q", "concurrency", "t", None)
    await queue.push("q", b"a", b"b")
    popped = await queue.pop("q", count=2)
    call = Admission("q", prefix="@w.7:")
    for d in popped:
        call.add(d, 0, limits_of(2, slots, None, slots))
    keys, args = call.call(LEASE)
    assert parse_verdicts(await LIBRARY.call(aredis, "job_admit", keys, args)) == [(1, 0, "")] * 2
    named = {f"@w.7:{d.id}".encode() for d in popped}
    assert set(await aredis.zrange(slots[0], 0, -1)) == named
    await aredis.zadd(slots[0], dict.fromkeys(named, 10**14))  # their worker died
    again: list[Any] = []
    for _ in range(400):  # a pop recovers them once their lease has lapsed
        again = await queue.pop("q", count=2)
        if again:
            break
        await asyncio.sleep(0.05)
    assert again and again[0].deliveries == 2
    await aredis.zadd(slots[0], {again[0].id: 10**14})  # a slot by its id: 3 held of 3
    for prefix, code in (("", 1), ("@w.8:", 0)):  # an earlier worker's call; a named one's
        call = Admission("q", prefix=prefix)
        call.add(again[0], 0, limits_of(3, slots, None, slots))
        keys, args = call.call(LEASE)
        assert parse_verdicts(await LIBRARY.call(aredis, "job_admit", keys, args))[0][0] == code


async def test_an_admission_takes_starts_ahead_logged_at_once_and_bounded(
    aredis: AsyncClient,
) -> None:
    """Starts asked ahead under a rate are granted up to an eighth of the limit and what the
    window has room for, logged as starts in the same call, and named at the reply's end
    (the limit's index in the call, how many)."""
    queue = ReliableQueue(aredis)
    log = limit_keys("q", "rate", "t", None)
    await queue.push("q", b"a", b"b", b"c", b"d", b"e", b"f")
    popped = await queue.pop("q", count=6)
    for batch, asked, rate, reply_tail, logged in (
        (popped[:2], 10, 16, [1, 2], 4),  # an eighth of 16: 2
        (popped[2:4], 100, 800, [1, 100], 4 + 2 + 100),
        (popped[4:], 1000, 110, [1, 2], 110),  # the window's room: 110 - 106 - 2
    ):
        call = Admission("q", prefix="@w.1:")
        for d in batch:
            call.add(d, 0, limits_of(0, log, Rate(rate, 60_000), log))
        call.take_ahead(log, asked)
        keys, args = call.call(LEASE)
        reply = await LIBRARY.call(aredis, "job_admit", keys, args)
        assert reply == [b"11", *reply_tail]
        assert await _starts(aredis, log[0]) == logged


async def test_a_delivery_is_judged_by_the_batch_it_was_popped_in_or_found_stale(
    aredis: AsyncClient,
) -> None:
    """The admission reads the batch each delivery names: a delivery of a batch since
    recovered (its message redelivered in another batch) is stale, the new one held; one that
    left its batch (refused, now delayed) is stale too."""
    queue = ReliableQueue(aredis, lease=0.05)
    await queue.push("q", b"a", b"b")
    old = await queue.pop("q", count=2)
    assert all(d.batch is not None for d in old)
    again: list[Any] = []
    for _ in range(400):  # a pop recovers both once the batch's lease has lapsed
        again = await queue.pop("q", count=2)
        if again:
            break
        await asyncio.sleep(0.05)
    assert [d.deliveries for d in again] == [2, 2] and again[0].batch != old[0].batch
    assert await _admit_many(aredis, old, cap=5) == [[-1], [-1]]  # their batch is gone
    mixed = [again[0], old[1]]  # one source, two batches: each looked up on its own
    assert await _admit_many(aredis, mixed, cap=5) == [[1], [-1]]
    assert (await _admit_many(aredis, [again[1]], cap=1))[0][0] == 0  # the cap is full
    assert await _admit_many(aredis, [again[1]], cap=5) == [[-1]]  # it left for the delayed set


async def test_extend_and_release_cover_many_limits_in_one_call(aredis: AsyncClient) -> None:
    a = limit_keys("q", "concurrency", "t", "a")
    b = limit_keys("q", "concurrency", "t", "b")
    await aredis.zadd(a[0], {"1": 5, "2": 5})
    await aredis.zadd(b[0], {"3": 5})
    reply = await run(aredis, "job_slot_extend", [*a, *b], [LEASE, 2, "1", "9", 1, "3"])
    assert reply == [b"00", b"9"]
    assert (await aredis.zscore(b[0], "3") or 0) > 10**12
    keys = [*_release_keys(a), *b]
    assert await run(aredis, "job_slot_release", keys, [2, "1", "2", 1, "3"]) == 0
    assert await aredis.zcard(a[0]) == 0 and await aredis.zcard(b[0]) == 0


async def test_a_rate_log_is_one_member_per_call_counted_over_a_sliding_window(
    aredis: AsyncClient,
) -> None:
    """Each call logs its starts as one member ("#<running total>:<n>"); the window counts
    them all, and a call's starts leave it together, a period after that call."""
    queue = ReliableQueue(aredis)
    await queue.push("q", *(str(n).encode() for n in range(8)))
    popped = await queue.pop("q", count=8)
    log = limit_keys("q", "rate", "t", None)[0]
    assert [v[0] for v in await _admit_many(aredis, popped[:2], 0, 3)] == [1, 1]
    [first] = await aredis.zrange(log, 0, -1)
    assert first == b"#000000000000002:2"
    verdicts = await _admit_many(aredis, popped[2:4], 0, 3)
    assert [v[0] for v in verdicts] == [1, 0] and verdicts[1][2] == "rate"
    assert await aredis.zcard(log) == 2 and await _starts(aredis, log) == 3
    uses = await limit_use(aredis, "q")  # not registered: the registry lists no limit
    assert uses == []
    # the first call's two starts leave the window together (its member made older than a
    # period): two start again, not more
    await aredis.zadd(log, {first: 1}, xx=True)
    verdicts = await _admit_many(aredis, popped[4:], 0, 3)
    assert [v[0] for v in verdicts] == [1, 1, 0, 0]
    assert await aredis.zrange(log, 0, -1) == [b"#000000000000003:1", b"#000000000000005:2"]
    assert await _starts(aredis, log) == 3


async def test_a_rate_log_of_an_earlier_version_counts_one_per_start(
    aredis: AsyncClient,
) -> None:
    """Members an earlier version wrote (one per start, "<id>:<count>") still count, one each,
    by the script and by the readers, beside this version's."""
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b", b"c")
    popped = await queue.pop("q", count=3)
    log = limit_keys("q", "rate", "t", None)[0]
    now = int(time.time() * 1000)
    await aredis.zadd(log, {"900:1": now, "901:1": now})
    verdicts = await _admit_many(aredis, popped, 0, 4)
    assert [v[0] for v in verdicts] == [1, 1, 0]
    assert await aredis.zcard(log) == 3 and await _starts(aredis, log) == 3  # read as members
    await aredis.zrem(log, "900:1", "901:1")
    assert await _starts(aredis, log) == 2  # this version's alone: its member's count


async def test_limits_in_use_read_a_rate_logs_starts(aredis: AsyncClient) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("q", b"a", b"b", b"c", b"d")
    popped = await queue.pop("q", count=4)
    paced = member("rate", "t", None, 3, 60_000)
    await _admit_many(aredis, popped[:2], 0, 3, register=(paced, ""))
    await _admit_many(aredis, popped[2:], 0, 3)
    [use] = await limit_use(aredis, "q")
    assert (use.kind, use.used, use.limit, use.per) == ("rate", 3, 3, "per 60s")  # "3/3"


async def test_an_admission_takes_a_few_arguments_whatever_the_batchs_size(
    aredis: AsyncClient,
) -> None:
    """A group's ids go in one argument, and so do a limit's slots to give back: a batch of 64
    costs the call the arguments of a batch of one (each argument is the client's packing and
    the server's parsing)."""
    slots = limit_keys("q", "concurrency", "t", None)
    queue = ReliableQueue(aredis)
    sizes, held = [], ["0"]  # a slot to give back in the first call too (none is held)
    for n in (1, 64):
        await queue.push("q", *(b"x" for _ in range(n)))
        popped = await queue.pop("q", count=n)
        call = Admission("q", {slots: held})  # the last call's slots come back first
        for d in popped:
            call.add(d, 0, limits_of(64, slots, None, slots))
        keys, args = call.call(LEASE)
        sizes.append(len(keys) + len(args))
        found = parse_verdicts(await LIBRARY.call(aredis, "job_admit", keys, args))
        assert [v[0] for v in found] == [1] * n
        assert set(await aredis.zrange(slots[0], 0, -1)) == {d.id.encode() for d in popped}
        await queue.ack(*popped)
        held = [d.id for d in popped]
    assert sizes[0] == sizes[1]


async def test_a_batch_under_a_large_cap_holds_its_slots_in_a_skiplist(
    aredis: AsyncClient,
) -> None:
    """A batch of 32 or more admitted under a cap makes its slots set a skiplist (each member
    added or removed is then a lookup, not a search of the set), and the wide member that made
    it one is gone; a few slots keep the compact listpack."""
    queue = ReliableQueue(aredis)
    slots = limit_keys("q", "concurrency", "t", None)[0]
    await queue.push("q", *(b"x" for _ in range(40)))
    few = await queue.pop("q", count=3)
    assert [v[0] for v in await _admit_many(aredis, few, cap=64)] == [1] * 3
    assert await aredis.object("encoding", slots) == b"listpack"
    many = await queue.pop("q", count=37)
    assert [v[0] for v in await _admit_many(aredis, many, cap=64)] == [1] * 37
    assert await aredis.object("encoding", slots) == b"skiplist"
    assert set(await aredis.zrange(slots, 0, -1)) == {d.id.encode() for d in few + many}
    released = tuple(d.id for d in few + many)
    assert await _admit_many(aredis, [], cap=64, releases=released) == []
    assert await aredis.exists(slots) == 0  # every slot given back: the set is gone


async def test_the_admission_is_a_function_of_the_jobs_library(
    aredis: AsyncClient, redis_url: str
) -> None:
    """`job_admit` runs as ``FCALL redline_job_admit_v2`` (library `redline_jobs`, allowed at
    maxmemory; the same function also as ``redline_job_admit``, for earlier workers), the
    parts it includes defined once at the library's top level (no closure of each per call);
    once a gate has admitted a batch, its admissions that ride a pop are FCALLs
    too, and one that finds the library gone (a flushed server) has it loaded again."""
    source = LIBRARY.source
    for helper in ("batch_load", "batch_intact", "slots_release", "slots_levels", "rate_open"):
        assert source.count(f"local function {helper}(") == 1
        assert source.index(f"local function {helper}(") < source.index("register_function")
    queue = ReliableQueue(aredis)
    gate = Gate(queue, lt.tasks, Levels(["l:ahead"], {"l:ahead": {0}}))
    for n in range(2):
        await enqueue(aredis, lt.quick, redis_url, n)
    [first] = await queue.pop("l:ahead")
    assert await gate.admit([first]) == [first]
    [library] = await aredis.function_list(library="redline_jobs")
    functions = {f[1]: f[5] for f in library[library.index(b"functions") + 1]}
    assert functions == {
        b"redline_job_admit_v2": [b"allow-oom"],
        b"redline_job_admit": [b"allow-oom"],
    }
    [second] = await queue.pop("l:ahead")
    asking = gate.ask([second])
    assert asking.commands[0][:2] == ("FCALL", "redline_job_admit_v2")
    await aredis.function_flush()
    replies, _ = await queue.pop_after(asking.commands, "l:ahead", count=1, block=0)
    assert LIBRARY.missing(replies[0])
    assert await gate.answer(asking, replies) == [second]
    assert await aredis.function_list(library="redline_jobs") != []  # loaded again


# An earlier worker's `redline_jobs`: its `redline_job_admit` read ARGV[2] as a number (a
# stand-in for its body: it fails on a call of today's arguments as the old one did).
EARLIER_LIBRARY = """#!lua name=redline_jobs
redis.register_function{function_name='redline_job_admit', callback=function(KEYS, ARGV)
  return {string.rep('1', tonumber(ARGV[2]) + 0)}
end, flags={'allow-oom'}}
"""


async def test_an_earlier_workers_library_loaded_over_this_one_breaks_no_call(
    aredis: AsyncClient, redis_url: str
) -> None:
    """An earlier worker restarted after this version's loads its `redline_jobs` over theirs
    (the library name is one per server): this version's admissions call the versioned name,
    find it missing and load their library again, whose plain name then serves the earlier
    worker's calls (their bare ARGV[2]) with today's body."""
    queue = ReliableQueue(aredis)
    gate = Gate(queue, lt.tasks, Levels(["l:ahead"], {"l:ahead": {0}}))
    for n in range(3):
        await enqueue(aredis, lt.quick, redis_url, n)
    first, second, third = await queue.pop("l:ahead", count=3)
    assert await gate.admit([first]) == [first]
    await aredis.function_load(EARLIER_LIBRARY, replace=True)
    assert await gate.admit([second]) == [second]  # its call named the function it meant
    [library] = await aredis.function_list(library="redline_jobs")
    assert {f[1] for f in library[library.index(b"functions") + 1]} == {
        b"redline_job_admit_v2",
        b"redline_job_admit",
    }
    call = Admission("l:ahead")  # as an earlier worker calls it: ARGV[2] its kept ms alone
    slots, log = (limit_keys("l:ahead", kind, "t", None) for kind in ("concurrency", "rate"))
    call.add(third, 0, limits_of(0, slots, Rate(100, 60_000), log))
    keys, args = call.call(LEASE)
    args[1] = str(args[1]).split("/")[0]
    reply = await aredis.fcall("redline_job_admit", len(keys), *keys, *args)
    assert parse_verdicts(reply) == [(1, 0, "")]


async def test_an_admission_runs_on_a_server_at_maxmemory() -> None:
    """A full server (maxmemory, noeviction) refuses pushes, but a worker can still start what
    it took under limits, as it can still pop and ack: the admission may run there."""
    srv = ServerProcess(config={"maxmemory-policy": "noeviction"}).start()
    client = connect(srv.url)
    try:
        queue = ReliableQueue(client)
        await queue.push("q", b"a", b"b", b"c")
        popped = await queue.pop("q", count=3)
        assert await _admit_many(client, popped[:1], cap=5, rate=100) == [[1]]
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory", used // 2)
        with pytest.raises(ServerFullError):
            await queue.push("q", b"d")
        assert await _admit_many(client, popped[1:], cap=5, rate=100) == [[1], [1]]
    finally:
        await client.aclose()
        srv.close()
