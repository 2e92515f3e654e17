"""What each worker is running, in its own instance record (like Sidekiq's "Busy" page).

A worker registered by the lifecycle (``<ns>:<id>``, `redline.runtime.lifecycle`) writes, on
its tick and only when the set of jobs it runs changed, three fields of that hash:

- ``busy``: JSON list, one object per running job (at most `SHOWN`, the oldest first):
  ``{"id", "task", "queue", "key", "attempt", "started"}`` — ``queue`` is the job's queue,
  ``key`` the list it was delivered from (its priority's), ``attempt`` its delivery count
  (the queue's fencing token), ``started`` unix seconds;
- ``running``: how many jobs it runs (also beyond `SHOWN`);
- ``concurrency``: how many it may run at once.

So a job costs no Redis command of its own, and what a worker published expires with its
instance. A SIGKILLed worker's record keeps its last list until the hash expires
(``serviceExpire``); its jobs are redelivered with a higher delivery count, so a reader that
matches ``(id, attempt)`` against the queue's in-flight list names the right holder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from redline.jobs.context import JobContext
from redline.runtime import Context
from redline.scripting.scripts import run

__all__ = ["SHOWN", "Busy", "Running", "running_of"]

log = logging.getLogger(__name__)

SHOWN = 500  # jobs a record lists; `running` counts them all


@dataclass(frozen=True)
class Running:
    """One job a worker runs, as its record lists it."""

    id: str
    task: str
    queue: str
    key: str
    attempt: int
    started: float


def running_of(fields: Mapping[str, str]) -> list[Running]:
    """The jobs listed in an instance record's fields (none when it has no valid ``busy``)."""
    try:
        listed = json.loads(fields.get("busy") or "[]")
        return [Running(**entry) for entry in listed]
    except (ValueError, TypeError):
        return []


class Busy:
    """Publishes a worker's running jobs (`publish`, from the worker's tick)."""

    def __init__(self, concurrency: int, home: Callable[[str], str]) -> None:
        self.concurrency = concurrency
        self.home = home  # key a job was delivered from -> its queue
        self._shown: frozenset[tuple[str, int]] | None = None

    def entries(self, jobs: Iterable[JobContext]) -> list[Running]:
        runs = sorted(jobs, key=lambda job: job.started)
        return [
            Running(j.id, j.task, self.home(j.queue), j.queue, j.attempt, round(j.started, 3))
            for j in runs
        ]

    async def publish(self, ctx: Context, jobs: Mapping[str, JobContext]) -> None:
        """Write the running jobs to the instance record when they changed since the last
        write (never recreating a record deleted meanwhile: that instance is stopping)."""
        now = frozenset((job.id, job.attempt) for job in jobs.values())
        if not ctx.instance_key or now == self._shown:
            return
        listed = self.entries(jobs.values())
        fields: list[Any] = [
            "busy",
            json.dumps([asdict(r) for r in listed[:SHOWN]], separators=(",", ":")),
            "running",
            len(listed),
            "concurrency",
            self.concurrency,
        ]
        if await run(ctx.lifecycle_redis, "hash_set_if_exists", [ctx.instance_key], fields):
            self._shown = now
