"""Which popped batches the gate judges: a worker with limited tasks starts the jobs of its
other tasks at once (no decoding, no admission), found by marks in the payloads; a document
that could name a limited task in another spelling (an escape) is judged all the same."""

from __future__ import annotations

import json

from redline.connection import AsyncClient
from redline.jobs import enqueue
from redline.jobs.limits import Gate
from redline.jobs.priority import Levels
from redline.queue import ReliableQueue
from tests.jobs import limit_tasks as lt


def _gate(queue: ReliableQueue, *queues: str) -> Gate:
    return Gate(queue, lt.tasks, Levels(list(queues), {q: {0} for q in queues}))


async def test_jobs_of_tasks_without_limits_are_not_judged(
    aredis: AsyncClient, redis_url: str
) -> None:
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:prio", "l:cap")
    await enqueue(aredis, lt.prio, redis_url, "plain")
    await enqueue(aredis, lt.capped, redis_url, 1)
    [plain] = await queue.pop("l:prio")
    [capped] = await queue.pop("l:cap")
    assert not gate.judges([plain])  # no limit, no expiry: started as popped
    assert gate.judges([capped]) and gate.judges([plain, capped])
    assert await gate.admit([plain]) == [plain] and gate.held == {}


async def test_a_limited_task_named_with_an_escape_is_still_judged(
    aredis: AsyncClient, redis_url: str
) -> None:
    """Another client may write the task name escaped (JSON allows any letter as \\uXXXX):
    the job is still judged, and takes its slot."""
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:cap")
    name = lt.capped.name.replace("c", "\\u0063")
    document = {"v": 1, "id": "x1", "args": [redis_url, 1], "kwargs": {}, "enqueued_at": 0}
    raw = json.dumps(document)[:-1] + f', "queue": "l:cap", "task": "{name}"}}'
    await aredis.lpush("l:cap", raw)
    [escaped] = await queue.pop("l:cap")
    assert lt.capped.name.encode() not in escaped.payload
    assert gate.judges([escaped])
    assert await gate.admit([escaped]) == [escaped]
    assert gate.held == {(escaped.key, escaped.id): gate.held[(escaped.key, escaped.id)]}
    assert await aredis.zcard("{l:cap}:job-concurrency:" + lt.capped.name) == 1
