"""Where an enqueue puts a job: the one script call that places it (its list or scheduled set,
its unique key, its priority) and records its `enqueued` event, or, for a job that replaces or
debounces, the `job_replace` call. Shared by the asyncio and the blocking enqueue (which only
run the call) and by `enqueue_many` (`many`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from redline.jobs.document import JobDocument, job_keys
from redline.jobs.events import EVENTS_MAXLEN, LIVE_TTL, PACK, enqueued_event
from redline.jobs.priority import levels_key, priority_key, scheduled_key
from redline.keys import derived

__all__ = ["Placement", "pending_key", "placement", "replaces", "with_expiry"]


class Placement(msgspec.Struct, frozen=True):
    """One script call; `enqueued(reply)` says whether the job was put on the queue. (A
    msgspec struct: made per enqueue, without a Python frame.)"""

    script: str
    keys: list[str]
    args: list[Any]

    def enqueued(self, reply: Any) -> bool:
        if self.script == "job_replace":
            return True  # replaced or enqueued: the new document is the pending one
        return reply in (b"", "")


def replaces(task: Any, doc: JobDocument) -> bool:
    """Whether enqueueing `doc` is a `job_replace` (its `enqueued` event then written apart)."""
    return bool(task.replace or task.debounce) and doc.unique is not None


def pending_key(queue: str, unique: str) -> str:
    """The document of the pending job holding a unique key (kept for replace and debounce)."""
    return derived(queue, "job-pending", unique)


def with_expiry(doc: JobDocument, task: Any, due: float | None) -> JobDocument:
    """`doc` with its start deadline: `task.expires` seconds after it is due."""
    if not task.expires:
        return doc
    start = doc.enqueued_at if due is None else due
    return msgspec.structs.replace(doc, expires=start + task.expires)


def placement(task: Any, due: float | None, doc: JobDocument, payload: bytes) -> Placement:
    """The call that places `doc` (its `payload`) as `task`'s options say."""
    queue, p = task.queue, task.priority
    if not replaces(task, doc):
        return _single(task, due, doc, payload)
    target, scheduled = priority_key(queue, p), scheduled_key(queue, p)
    if task.debounce:
        due = (time.time() if due is None else due) + task.debounce
    unique = str(doc.unique)
    lock, pending = job_keys(queue).unique(unique), pending_key(queue, unique)
    keys = [target, scheduled, lock, pending, levels_key(queue)]
    args = [payload, doc.id, task.unique_ttl, _due(due), "1" if task.debounce else "0", p]
    return Placement("job_replace", keys, args)


@functools.lru_cache(maxsize=1024)
def _fixed_keys(queue: str, priority: int) -> tuple[str, str, str, str]:
    """job_enqueue_many's first four keys (cached: each batch of a queue needs the same)."""
    lists = (priority_key(queue, priority), scheduled_key(queue, priority), levels_key(queue))
    return (*lists, job_keys(queue).events)


# job_enqueue's constant arguments as text: hiredis packs an int through a printf of its own
# (a few hundred instructions more per argument than a str).
_EVENTS_CAP, _STATUS_TTL = str(EVENTS_MAXLEN), str(LIVE_TTL)


@functools.lru_cache(maxsize=1024)
def _single_keys(queue: str, priority: int, due: bool) -> tuple[str, str, str, str | None, str]:
    """job_enqueue's keys for a job of `queue` at `priority` (cached: each enqueue of a queue
    needs the same): where it waits, the event stream, the prefix of its status hash, and the
    set of priorities used (None at priority 0, whose jobs do not name it); then the priority
    as text."""
    target = scheduled_key(queue, priority) if due else priority_key(queue, priority)
    keys = job_keys(queue)
    levels = levels_key(queue) if priority else None
    return target, keys.events, keys.status(""), levels, str(priority)


def _single(task: Any, due: float | None, doc: JobDocument, payload: bytes) -> Placement:
    """One `job_enqueue` call: `doc` and its `enqueued` event, together."""
    target, events, status, levels, p = _single_keys(task.queue, task.priority, due is not None)
    keys = [target, events, status + doc.id]
    if levels is not None:
        keys.append(levels)
    if doc.unique is not None:
        keys.append(job_keys(task.queue).unique(doc.unique))
    when = "" if due is None else repr(due)  # (as `_due`, without its frame)
    args = [payload, p, when, task.unique_ttl, _EVENTS_CAP, doc.id, task.name, _STATUS_TTL]
    return Placement("job_enqueue", keys, args)


def many(task: Any, due: float | None, docs: Sequence[tuple[JobDocument, bytes]]) -> Placement:
    """One `job_enqueue_many` call for `docs` (at most a batch) of `task`, each with its
    `enqueued` event."""
    queue, keys_of = task.queue, job_keys(task.queue)
    keys = [*_fixed_keys(queue, task.priority), *(keys_of.status(doc.id) for doc, _ in docs)]
    event = enqueued_event(queue, "", task.name, due)
    args: list[Any] = [task.priority, task.unique_ttl, _due(due), EVENTS_MAXLEN, task.name]
    args += [event.state, event.ttl, PACK]
    locks: dict[str, int] = {}
    for doc, payload in docs:
        if doc.unique is not None and doc.unique not in locks:
            locks[doc.unique] = len(locks) + 1  # its index among the lock keys
            keys.append(keys_of.unique(doc.unique))
        args += [payload, doc.id, 0 if doc.unique is None else locks[doc.unique]]
    return Placement("job_enqueue_many", keys, args)


def _due(due: float | None) -> str:
    return "" if due is None else repr(due)
