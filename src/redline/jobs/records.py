"""Writing job records: a completed job's result (kept `result_ttl`), a failed job's record
(kept within its queue's retention, trimmed in the same script: `job_failure.lua`).
Reading them is `redline.jobs.job.read_records`."""

from __future__ import annotations

from typing import Any

from redline.connection import AsyncClient
from redline.jobs.document import job_keys
from redline.jobs.job import RECENT, JobRecord
from redline.queue import QueueKeys
from redline.scripting.scripts import run

__all__ = ["keep_result", "note_recent", "record_failure"]


def keep_result(pipe: Any, queue: str, record: JobRecord, ttl: int, retried: bool) -> None:
    """Queue in `pipe` the commands that keep a completed job's record `ttl` seconds (and,
    when it was `retried`, drop the failure record of its earlier attempt)."""
    keys = job_keys(queue)
    pipe.hset(keys.record(record.id), mapping=record.to_hash())
    pipe.expire(keys.record(record.id), ttl)
    if retried:
        pipe.hdel(keys.failures, record.id)
        pipe.zrem(keys.failed, record.id)


def note_recent(pipe: Any, queue: str, job_id: str) -> None:
    """Queue in `pipe` the commands that list `job_id` among the queue's recent records."""
    recent = job_keys(queue).recent
    pipe.lpush(recent, job_id)
    pipe.ltrim(recent, 0, RECENT - 1)


async def record_failure(client: AsyncClient, queue: str, record: JobRecord) -> int:
    """Write a failed job's record; returns how many old ones the queue's retention dropped."""
    keys = job_keys(queue)
    return int(
        await run(
            client,
            "job_failure",
            [keys.failures, keys.failed, QueueKeys.of(queue).retention],
            [record.id, record.to_json()],
        )
    )
