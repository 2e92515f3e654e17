"""A worker's EventLog against a real server: a fast job's `started` waits for its end (its
status then never says running only to be deleted), a long job's goes out when `wake` comes,
and neither order nor events are lost."""

from __future__ import annotations

import asyncio

import pytest

from redline.connection import AsyncClient
from redline.errors import JobError
from redline.jobs import JobDocument, JobState, job_keys
from redline.jobs import events as ev

Q = "e:jobs"
KEYS = job_keys(Q)


async def _stream(client: AsyncClient) -> list[tuple[str, str]]:
    entries = await client.xrange(KEYS.events)
    return [(e.job, e.event) for i, f in entries for e in ev.JobEvent.in_entry(Q, i, f)]


async def _enqueued(client: AsyncClient) -> JobDocument:
    doc = JobDocument("t.task", queue=Q)
    await client.hset(KEYS.status(doc.id), mapping={"state": "waiting", "enqueued_at": 1})
    return doc


async def test_a_fast_jobs_start_goes_with_its_end(aredis: AsyncClient) -> None:
    log = ev.EventLog(True, wake=lambda: None, hold=3600)
    doc = await _enqueued(aredis)
    log.add(ev.started(Q, doc, 1))
    await log.flush(aredis)
    assert log and await _stream(aredis) == []  # held: the status still says waiting
    assert await aredis.hget(KEYS.status(doc.id), "state") == b"waiting"
    for pending in ev.finished(Q, doc, 1, JobState.COMPLETE):
        log.add(pending)
    await log.flush(aredis)
    assert not log
    assert await _stream(aredis) == [(doc.id, "started"), (doc.id, "completed")]
    assert not await aredis.exists(KEYS.status(doc.id))


async def test_a_long_jobs_start_is_written_when_wake_comes(aredis: AsyncClient) -> None:
    woken = asyncio.Event()
    log = ev.EventLog(True, wake=woken.set, hold=0.2)
    doc = await _enqueued(aredis)
    log.add(ev.started(Q, doc, 1))
    await log.flush(aredis)
    while log:  # the worker's settling loop: a flush on every wake
        await asyncio.wait_for(woken.wait(), 10)
        woken.clear()
        await log.flush(aredis)
    assert await _stream(aredis) == [(doc.id, "started")]
    assert await aredis.hget(KEYS.status(doc.id), "state") == b"running"


async def test_nothing_is_held_past_an_event_of_its_own_job_or_a_release(
    aredis: AsyncClient,
) -> None:
    log = ev.EventLog(True, wake=lambda: None, hold=3600)
    reporting, returned, running = [await _enqueued(aredis) for _ in range(3)]
    log.add(ev.started(Q, running, 1))
    log.add(ev.started(Q, reporting, 1))
    log.add(ev.progressed(reporting.id, Q, reporting.task, 1, 0.5, "half"))
    log.add(ev.started(Q, returned, 1))
    log.release(returned.id)  # its run ended by an exception: no end event may come
    await log.flush(aredis)
    assert await _stream(aredis) == [
        (reporting.id, "started"),
        (reporting.id, "progress"),
        (returned.id, "started"),
    ]
    assert log  # `running`'s start is still held, and goes out with the next flush after
    log.add(ev.progressed(running.id, Q, running.task, 1, 0.1, ""))
    await log.flush(aredis)
    assert (await _stream(aredis))[3:] == [(running.id, "started"), (running.id, "progress")]


async def test_without_wake_nothing_is_held(aredis: AsyncClient) -> None:
    log = ev.EventLog(True)
    doc = await _enqueued(aredis)
    log.add(ev.started(Q, doc, 1))
    await log.flush(aredis)
    assert not log and await _stream(aredis) == [(doc.id, "started")]


async def test_a_reader_restarted_inside_a_packed_entry_resumes_exactly(
    aredis: AsyncClient,
) -> None:
    docs = [await _enqueued(aredis) for _ in range(5)]
    await ev.write(aredis, [ev.started(Q, doc, 1) for doc in docs])  # one entry of 5
    seen = [e async for e in ev.job_events(aredis, Q)]
    assert [e.job for e in seen] == [doc.id for doc in docs]
    assert [e.id.rsplit(":", 1)[1] for e in seen] == ["0", "1", "2", "3", "4"]
    assert len({e.id.split(":")[0] for e in seen}) == 1
    later = [ev.finished(Q, doc, 1, JobState.COMPLETE)[0] for doc in docs[:2]]
    await ev.write(aredis, later)  # a second entry, of 2
    rest = [e async for e in ev.job_events(aredis, Q, since=seen[2].id)]  # stopped after 3
    assert [(e.job, e.event) for e in rest] == [(d.id, "started") for d in docs[3:]] + [
        (d.id, "completed") for d in docs[:2]
    ]
    assert [e.id for e in rest[:2]] == [e.id for e in seen[3:]]
    assert [e async for e in ev.job_events(aredis, Q, since=rest[-1].id)] == []
    assert [e async for e in ev.job_events(aredis, Q, since=seen[4].id)] == rest[2:]


async def test_a_since_that_is_no_event_id_is_refused_with_what_to_pass(
    aredis: AsyncClient,
) -> None:
    for bad in ("x:y", "1-0:", "yesterday", ""):
        with pytest.raises(JobError, match=r"not an event id.*'0-0' for all"):
            [e async for e in ev.job_events(aredis, Q, since=bad)]


async def test_an_entry_not_written_by_redline_is_named_with_what_to_do(
    aredis: AsyncClient,
) -> None:
    entry = await aredis.xadd(KEYS.events, {"events": "[1, 2"})
    with pytest.raises(JobError, match=f"entry {entry.decode()} .*XDEL"):
        [e async for e in ev.job_events(aredis, Q)]
    await aredis.xadd(KEYS.events, {"job": "j", "event": "started"})
    assert [e.job async for e in ev.job_events(aredis, Q, since=entry.decode())] == ["j"]
