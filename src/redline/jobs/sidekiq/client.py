"""Enqueueing Sidekiq jobs from Python, for Ruby workers (or redline's `--sidekiq` workers).

    jid = await enqueue_sidekiq(client, "HardWorker", "bob", 5)
    jid = await enqueue_sidekiq(client, "ReportJob", 7, queue="reports", at=tomorrow_9am)
    jid = enqueue_sidekiq_sync(sync_client, "HardWorker", "bob", 5, retry=3)

What Sidekiq::Client.push writes: ``SADD queues <queue>`` and ``LPUSH queue:<queue> <job>``
(with ``enqueued_at``), or ``ZADD schedule <at> <job>`` for a job due later.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from redline.connection import AsyncClient, Command, SyncClient, run_commands
from redline.errors import JobError
from redline.jobs.sidekiq.job import QUEUES, SCHEDULE, encode, new_job, queue_key

__all__ = ["enqueue_sidekiq", "enqueue_sidekiq_sync"]

When = dt.datetime | float | None


def _prepare(
    class_name: str, args: tuple[Any, ...], queue: str, at: When, retry: bool | int, extra: Any
) -> tuple[float | None, dict[str, Any]]:
    if not isinstance(class_name, str) or not class_name:
        raise JobError(f"sidekiq job class {class_name!r}: give the worker class name, a string")
    if not queue:
        raise JobError("sidekiq job queue is empty: give a queue name (Sidekiq's is 'default')")
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise JobError(f"enqueue_sidekiq: at={at!r} has no timezone: pass an aware datetime")
        at = at.timestamp()
    fields = new_job(class_name, args, queue, retry, **extra)
    due = at if at is not None and at > time.time() else None  # past: now, as Sidekiq does
    if due is None:
        fields["enqueued_at"] = time.time()
    return due, fields


def _commands(queue: str, due: float | None, fields: dict[str, Any]) -> list[Command]:
    payload = encode(fields)
    if due is None:
        return [("SADD", QUEUES, queue), ("LPUSH", queue_key(queue), payload)]
    return [("ZADD", SCHEDULE, repr(due), payload)]


async def enqueue_sidekiq(
    client: AsyncClient,
    class_name: str,
    /,
    *args: Any,
    queue: str = "default",
    at: When = None,
    retry: bool | int = True,
    **extra: Any,
) -> str:
    """Push a Sidekiq job for worker class `class_name`; returns its jid.

    `at`: when it is due (an aware datetime or unix seconds; ``schedule`` until then);
    `retry`: Sidekiq's option (true: up to 25 retries, a number: that many, false: none);
    `extra`: more job fields (``backtrace=True``, ``tags=[…]``…), written as given.
    """
    due, fields = _prepare(class_name, args, queue, at, retry, extra)
    await run_commands(client, _commands(queue, due, fields), raise_on_error=True)
    return str(fields["jid"])


def enqueue_sidekiq_sync(
    client: SyncClient,
    class_name: str,
    /,
    *args: Any,
    queue: str = "default",
    at: When = None,
    retry: bool | int = True,
    **extra: Any,
) -> str:
    """`enqueue_sidekiq` on a blocking client (a Flask or Django view, a script)."""
    due, fields = _prepare(class_name, args, queue, at, retry, extra)
    pipe = client.pipeline(transaction=False)
    for command in _commands(queue, due, fields):
        pipe.execute_command(*command)
    pipe.execute()
    return str(fields["jid"])
