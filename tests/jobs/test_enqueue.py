"""Enqueue, enqueue_in/at, unique jobs, and the cron scheduler's lease, on a real server."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from bench._calls import PythonCalls
from redline.connection import AsyncClient, connect_sync
from redline.errors import JobError
from redline.jobs import (
    CronSchedule,
    CronScheduler,
    JobDocument,
    Task,
    enqueue,
    enqueue_at,
    enqueue_in,
    enqueue_sync,
    job_keys,
)
from redline.scripting.scripts import run

send = Task.ref("app.send", queue="mail")


async def test_enqueue_puts_a_job_document_on_the_plain_list(aredis: AsyncClient) -> None:
    job = await enqueue(aredis, send, "a@b", subject="hi")
    assert job is not None
    raw = await aredis.lrange("mail", 0, -1)  # type: ignore[misc]
    doc = JobDocument.decode(raw[0])
    assert (doc.id, doc.task, doc.args, doc.kwargs) == (
        job.id,
        "app.send",
        ("a@b",),
        {"subject": "hi"},
    )


def test_enqueue_sync_pushes_the_same_document(sredis: Any) -> None:
    job_id = enqueue_sync(sredis, send, "x@y", subject="s")
    doc = JobDocument.decode(sredis.lrange("mail", 0, -1)[0])
    assert (doc.id, doc.args, doc.kwargs) == (job_id, ("x@y",), {"subject": "s"})
    unique = send.options(unique="k")
    assert enqueue_sync(sredis, unique) is not None and enqueue_sync(sredis, unique) is None
    assert sredis.llen("mail") == 2


async def test_unique_enqueue_is_a_no_op_while_pending(aredis: AsyncClient) -> None:
    unique = send.options(unique=True)
    first = await enqueue(aredis, unique, 1)
    assert first is not None
    assert await enqueue(aredis, unique, 1) is None
    assert await enqueue(aredis, unique, 2) is not None
    assert await aredis.llen("mail") == 2  # type: ignore[misc]
    key = job_keys("mail").unique(unique.unique_key((1,), {}) or "")
    assert await run(aredis, "job_unlock", [key], ["someone-else"]) == 0
    assert await run(aredis, "job_unlock", [key], [first.id]) == 1
    assert await enqueue(aredis, unique, 1) is not None


async def test_enqueue_in_and_at_wait_in_the_scheduled_set(aredis: AsyncClient) -> None:
    keys = job_keys("mail")
    await enqueue_in(aredis, 3600, send, "later")
    await enqueue_at(aredis, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1), send, "due")
    assert await aredis.llen("mail") == 0  # type: ignore[misc]
    moved = await run(aredis, "job_promote", [keys.scheduled, "mail"], [repr(time.time()), 100])
    assert moved == 1
    raw = await aredis.lrange("mail", 0, -1)  # type: ignore[misc]
    assert json.loads(raw[0])["args"] == ["due"]
    assert await aredis.zcard(keys.scheduled) == 1


async def test_enqueue_at_refuses_a_naive_datetime(aredis: AsyncClient) -> None:
    with pytest.raises(JobError, match="no timezone"):
        await enqueue_at(aredis, dt.datetime(2030, 1, 1), send)


async def test_only_one_cron_scheduler_enqueues(aredis: AsyncClient) -> None:
    fired: list[tuple[str, dt.datetime]] = []

    async def record(name: str, when: dt.datetime) -> None:
        fired.append((name, when))

    entries = [("app.tick", CronSchedule.parse("* * * * *"))]
    one = CronScheduler(aredis, entries, record, prefix="t:cron")
    two = CronScheduler(aredis, entries, record, prefix="t:cron")
    now = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.UTC)
    assert await one.tick(now) == [("app.tick", now.replace(second=0))]
    assert await two.tick(now + dt.timedelta(minutes=5)) == []  # not the lease holder
    await one.release()
    later = await two.tick(now + dt.timedelta(minutes=2))  # takes over: one run for the missed ones
    assert [when.minute for _, when in later] == [2]
    assert len(fired) == 2


def test_a_blocking_enqueue_makes_few_python_calls(redis_url: str) -> None:
    """One `enqueue_sync` of a plain job: the document made with no call per option it does
    not use and encoded with none for arguments it has not, the placement's keys cached per
    queue and its event's arguments written by the script: 34 Python calls on main
    (2026-12-07, Python 3.11), 21 now."""
    client = connect_sync(redis_url)
    enqueue_sync(client, send, "a@b")  # the channel and the script's keys made once
    with PythonCalls() as calls:
        assert enqueue_sync(client, send) is not None
    assert calls.all <= 21


async def test_an_awaited_enqueue_makes_few_python_calls_of_redline(aredis: AsyncClient) -> None:
    """One ``await enqueue`` of a plain job, redline's own frames (the loop's are asyncio's):
    as the blocking one, and no coroutine between `_enqueue` and `_put`, the held connection's
    cluster check made once: 45 on main, 32 now (a coroutine counts twice: called, resumed)."""
    await enqueue(aredis, send, "a@b")
    with PythonCalls() as calls:
        assert await enqueue(aredis, send) is not None
    assert calls.redline <= 34
