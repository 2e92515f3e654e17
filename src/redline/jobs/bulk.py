"""Bulk enqueue: many jobs of one task in one round trip per 1,000.

    jobs = await enqueue_many(client, send_mail, [(("a@example.com",), {"subject": "hi"}),
                                                   (("b@example.com",), {})])

Each batch is one `job_enqueue_many` script call: unique keys are honoured (a job whose key is
held, by a pending job or by an earlier job of the same call, is not enqueued: its place in the
result is None) and the task's priority picks the list. The task must not replace or debounce
(each of those enqueues is a decision about the job before it: enqueue them one by one).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from redline.connection import AsyncClient, SyncClient
from redline.errors import JobError
from redline.jobs.document import JobDocument
from redline.jobs.job import Job
from redline.jobs.placement import Placement, many, with_expiry
from redline.jobs.task import Task
from redline.queue.core import BATCH
from redline.scripting.scripts import run_batched_many, run_held_many

__all__ = ["enqueue_many", "enqueue_many_sync"]

Calls = Iterable[tuple[Sequence[Any], Mapping[str, Any]]]


def _document(task: Task[..., Any], item: Any, job_id: str, now: float) -> JobDocument:
    if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], Mapping)):
        raise JobError(
            f"enqueue_many: {item!r:.80} is not an (args, kwargs) pair: pass e.g. "
            "[((1, 2), {}), ((3,), {'flag': True})]"
        )
    args, kwargs = tuple(item[0]), dict(item[1])
    unique = None if task.unique is False else task.unique_key(args, kwargs)
    return JobDocument(task.name, args, kwargs, task.queue, job_id, now, unique, task.result_ttl)


def _ids(n: int) -> list[str]:
    """`n` fresh job ids (as `new_job_id` makes them) from one read of the random source."""
    text = os.urandom(16 * n).hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


def _batches(
    task: Task[..., Any], calls: Calls, due: float | None
) -> Iterator[tuple[list[JobDocument], Placement]]:
    if task.replace or task.debounce:
        raise JobError(
            f"enqueue_many: task {task.name!r} replaces or debounces: enqueue its jobs one by one"
        )
    calls = list(calls)
    now, ids = time.time(), _ids(len(calls))  # one clock read and one random read per call
    docs = [_document(task, item, job_id, now) for item, job_id in zip(calls, ids, strict=True)]
    if task.expires:
        docs = [with_expiry(doc, task, due) for doc in docs]
    # All checked before any is sent: a document of plain arguments cannot fail to encode, so
    # it is encoded with its batch (while the batch before is on the server); others here.
    checked = [(doc, None if doc.plain() else doc.encode()) for doc in docs]
    for i in range(0, len(checked), BATCH):
        chunk = [
            (doc, doc.encode_plain() if payload is None else payload)
            for doc, payload in checked[i : i + BATCH]
        ]
        yield [doc for doc, _ in chunk], many(task, due, chunk)


async def enqueue_many(
    client: AsyncClient, task: Task[..., Any], calls: Calls, *, due: float | None = None
) -> list[Job | None]:
    """Enqueue a job of `task` per ``(args, kwargs)`` in `calls` (due at `due`, unix seconds,
    when given), one round trip per 1,000 jobs. Returns a `Job` per call, in order; None where
    a unique job with the key was pending. Each batch is made while the one before runs on
    the server (`run_batched_many`)."""
    queue, name, ttl = task.queue, task.name, task.result_ttl
    jobs: list[Job | None] = []
    sent: deque[list[JobDocument]] = deque()
    async for held in run_batched_many(client, "job_enqueue_many", _made(task, calls, due, sent)):
        docs = sent.popleft()
        jobs += [
            None if holder else Job(doc.id, queue, name, client, ttl)
            for doc, holder in zip(docs, held, strict=True)
        ]
    return jobs


def _made(
    task: Task[..., Any], calls: Calls, due: float | None, sent: deque[list[JobDocument]]
) -> Iterator[tuple[list[str], list[Any]]]:
    """The script calls of `_batches`, each batch's documents appended to `sent` as it is made
    (every document is checked before the first batch is made)."""
    for docs, placed in _batches(task, calls, due):
        sent.append(docs)
        yield placed.keys, placed.args


def enqueue_many_sync(
    client: SyncClient, task: Task[..., Any], calls: Calls, *, due: float | None = None
) -> list[str | None]:
    """`enqueue_many` on a blocking client: the job ids (None where a unique key was held)."""
    sent: deque[list[JobDocument]] = deque()
    ids: list[str | None] = []
    for held in run_held_many(client, "job_enqueue_many", _made(task, calls, due, sent)):
        docs = sent.popleft()
        ids += [None if holder else doc.id for doc, holder in zip(docs, held, strict=True)]
    return ids
