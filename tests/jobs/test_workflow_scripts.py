"""The workflow scripts against a real server, driven step by step as a worker drives them:
members popped from their queue, their outcomes settled, crashes as steps left undone."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from redline.connection import AsyncClient, connect
from redline.errors import WorkflowError, WorkflowFailed
from redline.jobs import Task, chain, chord, enqueue, group, workflow
from redline.jobs.document import JobDocument
from redline.jobs.worker import JobOutcome
from redline.jobs.workflow import MAX_RESULT, MemberState, ResultTooLarge, WorkflowKeys
from redline.jobs.workflow.progress import (
    _confirm_call,
    _dispatch_calls,
    _ready,
    kept_result,
    settle_members,
)
from redline.jobs.workflow.state import marker_key
from redline.queue import Delivery, ReliableQueue
from redline.scripting.scripts import run

Q = "wfs:q"
work = Task.ref("w.work", queue=Q)
callback = Task.ref("w.callback", queue=Q)
handler = Task.ref("w.handler", queue=Q)


async def pop_all(client: AsyncClient, count: int = 100) -> list[tuple[Delivery, JobDocument]]:
    popped = await ReliableQueue(client, lease=30).pop(Q, count=count)
    return [(d, JobDocument.decode(d.payload, Q)) for d in popped]


def ok(delivery: Delivery, doc: JobDocument, value: Any) -> JobOutcome:
    return JobOutcome(delivery, doc, ok=True, value=json.dumps(value))


def dead(delivery: Delivery, doc: JobDocument, error: str) -> JobOutcome:
    return JobOutcome(delivery, doc, error=error, dead=True)


def by_member(
    popped: list[tuple[Delivery, JobDocument]],
) -> dict[str, tuple[Delivery, JobDocument]]:
    return {doc.workflow["member"]: (d, doc) for d, doc in popped if doc.workflow}


async def test_a_chord_callback_gets_the_results_in_member_order(aredis: AsyncClient) -> None:
    h = await enqueue(aredis, chord(group(work.s(i) for i in range(3)), callback.s("x")))
    members = by_member(await pop_all(aredis))
    assert sorted(members) == ["0", "1", "2"]
    assert members["1"][1].args == (1,) and members["1"][1].id == f"{h.id}.1"
    for name in ("2", "0", "1"):  # finished in another order
        await settle_members(aredis, [ok(*members[name], int(name) * 10)])
    [(cb_delivery, cb)] = await pop_all(aredis)
    assert cb.task == "w.callback" and cb.args == ([0, 10, 20], "x")
    await settle_members(aredis, [ok(cb_delivery, cb, "done")])
    assert await h.result(timeout=5) == "done"
    assert await h.results(timeout=5) == [0, 10, 20, "done"]


async def test_a_kill_between_the_push_and_its_confirmation_pushes_once(
    aredis: AsyncClient,
) -> None:
    h = await enqueue(aredis, chord(group(work.s(i) for i in range(2)), callback.s()))
    members = by_member(await pop_all(aredis))
    await settle_members(aredis, [ok(*members["0"], 1)])
    # The last member's worker: the settle script and the push of the callback, then killed
    # before the confirmation (and the ack): the callback is on the queue, still `waiting`.
    keys = WorkflowKeys(h.id)
    delivery, doc = members["1"]
    args = [repr(time.time()), "1", delivery.deliveries, "ok", "2"]
    ready = _ready((await run(aredis, "workflow_settle", keys.all, args))[1:])
    assert [name for name, _, _ in ready] == ["callback"]
    for call_keys, call_args in _dispatch_calls(h.id, ready):
        await run(aredis, "workflow_dispatch", call_keys, call_args)
    assert (await h.status()).members[2].state is MemberState.WAITING
    # The member is redelivered and runs again (another result): counted once, the callback
    # offered again and not pushed again, and now confirmed.
    await settle_members(aredis, [ok(Delivery(Q, delivery.id, delivery.payload, 2), doc, 99)])
    callbacks = await pop_all(aredis)
    assert [doc.args for _, doc in callbacks] == [([1, 2],)]
    status = await h.status()
    assert [m.state for m in status.members] == [MemberState.DONE] * 2 + [MemberState.DISPATCHED]
    assert await aredis.hget(keys.times, "1:t") == b"1"  # the first run's token counted
    assert status.counts["repeats"] == 1


async def test_a_member_that_ends_before_its_push_is_confirmed_keeps_its_push_time(
    aredis: AsyncClient,
) -> None:
    h = await enqueue(aredis, chain(work.s(1), work.s()))
    [(first, _)] = await pop_all(aredis)
    keys = WorkflowKeys(h.id)
    pushed_at = time.time()
    args = [repr(time.time()), "0", first.deliveries, "ok", "2"]
    ready = _ready((await run(aredis, "workflow_settle", keys.all, args))[1:])
    for call_keys, call_args in _dispatch_calls(h.id, ready):
        await run(aredis, "workflow_dispatch", call_keys, call_args)
    # Another worker takes the next member at once and ends it before this one confirms.
    [(second, second_doc)] = await pop_all(aredis)
    await settle_members(aredis, [ok(second, second_doc, 4)])
    await run(aredis, "workflow_confirm", *_confirm_call(h.id, ready, pushed_at))
    member = (await h.status()).members[1]
    assert member.state is MemberState.DONE and member.finished_at
    assert member.dispatched_at == pushed_at <= member.finished_at
    assert await h.result(timeout=5) == 4


async def test_the_last_two_members_finishing_at_once_push_one_callback(redis_url: str) -> None:
    clients = [connect(redis_url) for _ in range(2)]
    try:
        for _ in range(20):
            h = await enqueue(clients[0], chord(group(work.s(i) for i in range(2)), callback.s()))
            members = by_member(await pop_all(clients[0]))
            await asyncio.gather(
                settle_members(clients[0], [ok(*members["0"], 0)]),
                settle_members(clients[1], [ok(*members["1"], 1)]),
            )
            callbacks = await pop_all(clients[0])
            assert [doc.id for _, doc in callbacks] == [f"{h.id}.callback"]
    finally:
        for client in clients:
            await client.aclose()


async def test_a_failure_skips_its_dependants_and_runs_on_error_once(
    aredis: AsyncClient,
) -> None:
    wf = workflow(
        a=work.s(1),
        b=work.s(),
        c=work.s(),
        d=work.s(),
        e=work.s(),
        depends_on={"b": ["a"], "c": ["b"], "d": ["a"], "e": ["c", "d"]},
        on_error=handler.s("tag"),
    )
    h = await enqueue(aredis, wf)
    members = by_member(await pop_all(aredis))
    await settle_members(aredis, [ok(*members["a"], 1)])
    members = by_member(await pop_all(aredis))
    assert sorted(members) == ["b", "d"]
    failure = dead(*members["b"], "ValueError: no")
    await settle_members(aredis, [failure])
    await settle_members(aredis, [failure])  # reported twice (a kill before the ack)
    [(_, on_error)] = await pop_all(aredis)
    info = {"workflow": h.id, "member": "b", "error": "ValueError: no"}
    assert on_error.task == "w.handler" and on_error.args == (info, "tag")
    status = await h.status()
    states = {m.name: m.state for m in status.members}
    assert states == {"a": "done", "b": "failed", "c": "skipped", "d": "dispatched", "e": "skipped"}
    assert status.state == "failed" and status.finished is None  # d still runs
    await settle_members(aredis, [ok(*members["d"], 4)])
    with pytest.raises(WorkflowFailed, match="member 'b' failed: ValueError: no"):
        await h.result(timeout=5)
    assert (await h.status()).counts["skipped"] == 2


async def test_cancel_stops_what_waits_and_cancels_what_was_pushed(aredis: AsyncClient) -> None:
    h = await enqueue(aredis, chain(work.s(1), work.s(), work.s()))
    [(delivery, doc)] = await pop_all(aredis)
    assert await h.cancel() is True
    assert await h.cancel() is False  # it has ended
    assert await aredis.zscore("{wfs:q}:job-cancelled", f"{h.id}.0") is not None
    await settle_members(aredis, [ok(delivery, doc, 1)])  # finished anyway: ignored
    assert await pop_all(aredis) == []
    status = await h.status()
    assert [m.state for m in status.members] == [MemberState.CANCELLED] * 3
    with pytest.raises(WorkflowFailed, match="cancelled"):
        await h.result(timeout=1)


async def test_the_state_expires_after_the_end_and_nothing_else_is_left(
    aredis: AsyncClient,
) -> None:
    h = await enqueue(aredis, group([work.s(1), work.s(2)], result_ttl=600))
    keys = WorkflowKeys(h.id)
    assert await aredis.ttl(keys.meta) == -1  # running: kept
    members = by_member(await pop_all(aredis))
    await settle_members(aredis, [ok(*members["0"], 1), ok(*members["1"], 2)])
    assert await h.results(timeout=5) == [1, 2]
    for key in keys.all:
        assert (await aredis.exists(key)) == 0 or 0 < await aredis.ttl(key) <= 600, key
    assert 0 < await aredis.ttl(marker_key(Q, h.id)) <= 86_400


async def test_a_group_of_10000_is_enqueued_in_a_few_calls(aredis: AsyncClient) -> None:
    await enqueue(aredis, group(work.s(0)))  # the scripts are loaded (EVALSHA finds them)
    await aredis.delete(Q)
    before = await aredis.info("commandstats")
    calls = lambda stats: sum(  # noqa: E731
        stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("eval", "evalsha", "fcall")
    )
    h = await enqueue(aredis, group(work.s(i) for i in range(10_000)))
    after = await aredis.info("commandstats")
    # create, 10 pushes of 1,000, confirm: 12 (not 10,000); the session's server is shared
    # with processes of earlier tests that may still be stopping, hence the margin
    assert calls(after) - calls(before) <= 15
    assert await aredis.llen(Q) == 10_000
    assert (await h.status()).members[9_999].state is MemberState.DISPATCHED


async def test_bad_workflows_are_refused_before_anything_is_written(aredis: AsyncClient) -> None:
    cyclic = workflow(a=work.s(), b=work.s(), depends_on={"a": ["b"], "b": ["a"]})
    with pytest.raises(WorkflowError, match="cycle: a -> b -> a"):
        await enqueue(aredis, cyclic)
    with pytest.raises(WorkflowError, match="depends on \\['z'\\]"):
        await enqueue(aredis, workflow(a=work.s(), depends_on={"a": ["z"]}))
    with pytest.raises(WorkflowError, match="unique"):
        await enqueue(aredis, group(work.options(unique=True).s(1)))
    with pytest.raises(WorkflowError, match="no members"):
        await enqueue(aredis, group())
    assert await aredis.dbsize() == 0


def test_a_member_result_above_the_limit_is_refused() -> None:
    doc = JobDocument("w.work", workflow={"id": "x", "member": "0"})
    assert kept_result(doc, "x" * 100) == json.dumps("x" * 100)
    with pytest.raises(ResultTooLarge, match="more than the 524288 a workflow keeps"):
        kept_result(doc, "x" * MAX_RESULT)
    assert kept_result(JobDocument("w.work"), "x" * MAX_RESULT) is None  # not a member
