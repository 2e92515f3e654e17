"""A job's status: the hash `redline.jobs.events` keeps per live job, read by
``await job.status()`` (see that module for what writes it and how long it is kept)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redline.connection import AsyncClient
from redline.connection import text as decoded
from redline.jobs.document import JobState, job_keys

__all__ = ["JobStatus", "job_status"]


@dataclass(frozen=True)
class JobStatus:
    """Where a job is (see the module docstring for how long this is known)."""

    id: str
    state: JobState
    attempts: int = 0
    progress: float | None = None
    message: str = ""
    last_event: str = ""
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    cancel_requested_at: float | None = None


def _seconds(text: Mapping[str, str], name: str) -> float | None:
    value = text.get(name)
    return int(value) / 1000 if value else None


async def job_status(client: AsyncClient, queue: str, job_id: str) -> JobStatus | None:
    """The status hash of job `job_id` on `queue`, or None when none is kept."""
    raw: dict[Any, Any] = await client.hgetall(job_keys(queue).status(job_id))
    if not raw or b"state" not in raw:
        return None
    text = {decoded(k, "replace"): decoded(v, "replace") for k, v in raw.items()}
    progress = text.get("progress")
    # An enqueue writes only state and enqueued_at (the job's one change so far); every later
    # event writes last_event, updated_at and attempts.
    return JobStatus(
        id=job_id,
        state=JobState(text["state"]),
        attempts=int(text.get("attempts") or 0),
        progress=float(progress) if progress else None,
        message=text.get("message", ""),
        last_event=text.get("last_event", "enqueued"),
        enqueued_at=_seconds(text, "enqueued_at"),
        started_at=_seconds(text, "started_at"),
        finished_at=_seconds(text, "finished_at"),
        updated_at=_seconds(text, "updated_at") or _seconds(text, "enqueued_at"),
        cancel_requested_at=_seconds(text, "cancel_requested_at"),
    )
