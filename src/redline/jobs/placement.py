"""Where an enqueue puts a job when it has a priority, replaces or debounces: the script call
that places it (the plain cases stay in `redline.jobs.job`). Shared by the asyncio and the
blocking enqueue, which only run the call."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redline.jobs.document import JobDocument, job_keys
from redline.jobs.priority import levels_key, priority_key, scheduled_key
from redline.keys import derived

__all__ = ["Placement", "pending_key", "placement", "special", "with_expiry"]


@dataclass(frozen=True)
class Placement:
    """One script call; `enqueued(reply)` says whether the job was put on the queue."""

    script: str
    keys: list[str]
    args: list[Any]

    def enqueued(self, reply: Any) -> bool:
        if self.script == "job_replace":
            return True  # replaced or enqueued: the new document is the pending one
        return reply[0] in (b"", "")


def special(task: Any) -> bool:
    """Whether `task`'s enqueues need a `placement` (a priority, replace or debounce)."""
    return bool(task.priority or task.replace or task.debounce)


def pending_key(queue: str, unique: str) -> str:
    """The document of the pending job holding a unique key (kept for replace and debounce)."""
    return derived(queue, "job-pending", unique)


def with_expiry(doc: JobDocument, task: Any, due: float | None) -> JobDocument:
    """`doc` with its start deadline: `task.expires` seconds after it is due."""
    if not task.expires:
        return doc
    start = doc.enqueued_at if due is None else due
    return dataclasses.replace(doc, expires=start + task.expires)


def placement(task: Any, due: float | None, doc: JobDocument, payload: bytes) -> Placement:
    """The call that places `doc` (its `payload`) as `task`'s options say."""
    queue, p = task.queue, task.priority
    target, scheduled = priority_key(queue, p), scheduled_key(queue, p)
    if (task.replace or task.debounce) and doc.unique is not None:
        if task.debounce:
            due = (time.time() if due is None else due) + task.debounce
        lock, pending = job_keys(queue).unique(doc.unique), pending_key(queue, doc.unique)
        keys = [target, scheduled, lock, pending]
        args = [payload, doc.id, task.unique_ttl, _due(due), "1" if task.debounce else "0", p]
        return Placement("job_replace", [*keys, levels_key(queue)], args)
    return many(task, due, [(doc, payload)])


def many(task: Any, due: float | None, docs: Sequence[tuple[JobDocument, bytes]]) -> Placement:
    """One `job_enqueue_many` call for `docs` (at most a batch) of `task`."""
    queue = task.queue
    keys = [priority_key(queue, task.priority), scheduled_key(queue, task.priority)]
    keys.append(levels_key(queue))
    args: list[Any] = [task.priority, task.unique_ttl, _due(due)]
    locks: dict[str, int] = {}
    for doc, payload in docs:
        if doc.unique is not None and doc.unique not in locks:
            locks[doc.unique] = len(locks) + 1  # its index among the lock keys
            keys.append(job_keys(queue).unique(doc.unique))
        args += [payload, doc.id, 0 if doc.unique is None else locks[doc.unique]]
    return Placement("job_enqueue_many", keys, args)


def _due(due: float | None) -> str:
    return "" if due is None else repr(due)
