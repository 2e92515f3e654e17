"""Job events and status: every state change of a job, in a capped Redis Stream per queue.

    async for event in job_events(client, "mail", since=last_id, follow=True):
        print(event.id, event.job, event.event)      # resume later with since=event.id

An event has the fields ``job``, ``event``, ``attempt``, ``task`` and, when there is one,
``progress`` (0..1) and ``message``. The events are `EVENTS`: enqueued, started, progress,
failed (an attempt raised), retried, completed, dead, cancelled, expired. A single event is a
stream entry of those fields; the events written together (a worker's batch, an
`enqueue_many` batch) share entries of up to `PACK`, as one field ``events``: a JSON array of
``[job, event, attempt, task]`` (with ``progress`` and ``message`` after them when either is
set), so the server appends one entry, not one per event. Readers (`job_events`, the
dashboard, `redline jobs events`) unpack them: an event of a packed entry has the id
``<entry id>:<index>``, and ``since=`` such an id resumes with the rest of that entry. The
stream keeps about `EVENTS_MAXLEN` entries (``MAXLEN ~``): a reader that falls further behind
than that misses the oldest.

The same script keeps a status hash per live job (`JobKeys.status`): state, attempts,
progress, message and times, read by ``await job.status()`` (`redline.jobs.status`). It lives
`LIVE_TTL` seconds from each change while the job waits or runs; a completed job's is deleted
(or kept ``result_ttl`` seconds when its task keeps results), a dead or cancelled job's is
kept `FAILURE_TTL`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from redline.connection import AsyncClient, SyncClient
from redline.connection import text as decoded
from redline.errors import JobError
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.scripting.scripts import run_batched, run_sync

__all__ = [
    "EVENTS",
    "EVENTS_MAXLEN",
    "EventLog",
    "JobEvent",
    "enqueued_event",
    "job_events",
    "record_enqueued",
    "record_enqueued_sync",
]

EVENTS = (
    "enqueued",
    "started",
    "progress",
    "failed",
    "retried",
    "completed",
    "dead",
    "cancelled",
    "expired",
)
EVENTS_MAXLEN = 10_000  # entries a queue's stream keeps (about: MAXLEN ~)
LIVE_TTL = 86_400  # seconds a waiting or running job's status lives from its last change
FAILURE_TTL = 7 * 86_400  # seconds a dead or cancelled job's status is kept
FLUSH_BATCH = 500  # events per script call
PACK = 32  # events per stream entry (see the module docstring)
_packed_encode = msgspec.json.Encoder().encode
_packed_decode = msgspec.json.Decoder(list[list[Any]]).decode
STARTED_HOLD = 0.05  # seconds a running job's started event may wait for its end's flush


class Pending(msgspec.Struct, frozen=True):
    """One event waiting to be written (the script's 8 arguments, and the queue); a msgspec
    struct, as a worker makes a few per job."""

    queue: str
    job: str
    event: str
    state: str = ""
    attempt: int = 0
    task: str = ""
    progress: str = ""
    message: str = ""
    ttl: int = LIVE_TTL
    at: float = 0.0  # when a started event was made (time.monotonic; see EventLog)

    def args(self) -> list[str | int]:
        return [
            self.job,
            self.event,
            self.state,
            self.attempt,
            self.task,
            self.progress,
            self.message[:1000],
            self.ttl,
        ]


def enqueued_event(queue: str, job: str, task: str, due: float | None) -> Pending:
    state = JobState.WAITING if due is None else JobState.SCHEDULED
    return Pending(queue, job, "enqueued", state.value, 0, task)


async def write(client: AsyncClient, events: list[Pending]) -> None:
    """Append `events` (one script call per queue and `FLUSH_BATCH`)."""
    for queue, group in _by_queue(events).items():
        for i in range(0, len(group), FLUSH_BATCH):
            keys, args = _call(queue, group[i : i + FLUSH_BATCH])
            await run_batched(client, "job_events", keys, args)


def _by_queue(events: list[Pending]) -> dict[str, list[Pending]]:
    groups: dict[str, list[Pending]] = {}
    for pending in events:
        groups.setdefault(pending.queue, []).append(pending)
    return groups


def _entry(group: list[Pending]) -> list[str | bytes]:
    """The fields of the stream entry holding `group`: one event's own fields, or `events`
    (a JSON array of ``[job, event, attempt, task]`` with progress and message when set)."""
    if len(group) == 1:
        pending = group[0]
        fields: list[str | bytes] = ["job", pending.job, "event", pending.event]
        fields += ["attempt", str(pending.attempt), "task", pending.task]
        fields += ["progress", pending.progress] if pending.progress else []
        return fields + (["message", pending.message[:1000]] if pending.message else [])
    rows = [
        (p.job, p.event, p.attempt, p.task, p.progress, p.message[:1000])
        if p.progress or p.message
        else (p.job, p.event, p.attempt, p.task)
        for p in group
    ]
    return ["events", _packed_encode(rows)]


def _call(
    queue: str, group: list[Pending], cap: int = EVENTS_MAXLEN
) -> tuple[list[str], list[str | int | bytes]]:
    """`job_events`' keys and arguments for `group` (see its header): the events in entries of
    up to `PACK`, then the status writes, then the statuses deleted (fast jobs: a completed
    job's earlier events of the batch leave its status alone, as it is deleted)."""
    keys = job_keys(queue)
    deleted = list(dict.fromkeys(p.job for p in group if p.ttl == 0))
    gone = set(deleted)
    written = [p for p in group if p.job not in gone]
    args: list[str | int | bytes] = [cap, -(-len(group) // PACK)]
    for i in range(0, len(group), PACK):
        fields = _entry(group[i : i + PACK])
        args += [len(fields), *fields]
    args.append(len(written))
    for p in written:
        args += [p.event, p.state, p.attempt, p.progress, p.message[:1000], p.ttl]
    statuses = [keys.status(p.job) for p in written] + [keys.status(j) for j in deleted]
    return [keys.events, *statuses], args


async def record_enqueued(
    client: AsyncClient, queue: str, job: str, task: str, due: float | None
) -> None:
    """The `enqueued` event of a job just put on its queue (or scheduled, when `due`)."""
    await write(client, [enqueued_event(queue, job, task, due)])


def record_enqueued_sync(
    client: SyncClient, queue: str, job: str, task: str, due: float | None
) -> None:
    """Blocking twin of `record_enqueued`."""
    keys, args = _call(queue, [enqueued_event(queue, job, task, due)])
    run_sync(client, "job_events", keys, args)


class EventLog:
    """A worker's events, collected as jobs change state and written together by `flush`
    (from the worker's settling loop: one script call per queue per batch, not per job).

    Given `wake` (asks for a flush), a flush holds back the `started` event of a job started
    less than `hold` seconds ago with no other event in the batch: it goes with the
    next flush, which for a fast job also carries its end (its settling follows its run by a
    batch), so its status is written once (or deleted) instead of written and then deleted.
    `wake` is called `hold` seconds later, so a long job's start is written then. A job's own
    events keep their order. A run that ended by an exception (a job returned to its queue at
    a worker's stop gets no end event) is `release`d: its start is written with the next flush.
    """

    def __init__(
        self,
        enabled: bool = True,
        wake: Callable[[], None] | None = None,
        hold: float = STARTED_HOLD,
    ) -> None:
        self.enabled = enabled
        self._pending: list[Pending] = []
        self._wake, self._hold = wake, hold
        self._released: set[str] = set()

    def release(self, job: str) -> None:
        """Hold the started event of `job` no longer."""
        if self._wake is not None:
            self._released.add(job)

    def add(self, pending: Pending) -> None:
        if self.enabled:
            self._pending.append(pending)

    def __bool__(self) -> bool:
        return bool(self._pending)

    async def flush(self, client: AsyncClient) -> None:
        """Write what was collected; on a connection error they stay for the next flush."""
        if not self._pending:
            return
        pending, held = self._split(self._pending)
        self._pending = held
        try:
            await write(client, pending)
        except BaseException:
            self._pending[:0] = pending
            raise

    def _split(self, pending: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """(what to write now, what to hold: see the class docstring)."""
        if self._wake is None:
            return pending, []
        fresh, released = time.monotonic() - self._hold, self._released
        others = {p.job for p in pending if p.event != "started"} | released
        self._released = set()
        held = [p for p in pending if p.event == "started" and p.at > fresh and p.job not in others]
        if not held:
            return pending, []
        asyncio.get_running_loop().call_later(self._hold, self._wake)
        kept = set(map(id, held))
        return [p for p in pending if id(p) not in kept], held


@dataclass(frozen=True)
class JobEvent:
    """One entry of a queue's event stream; `id` is its stream id (pass it as `since`)."""

    id: str
    queue: str
    job: str
    event: str
    attempt: int = 0
    task: str = ""
    progress: float | None = None
    message: str = ""

    @property
    def time(self) -> float:
        """When it was appended (unix seconds, from the stream id)."""
        return int(self.id.split("-")[0]) / 1000

    @classmethod
    def in_entry(
        cls, queue: str, entry_id: bytes | str, fields: Mapping[Any, Any]
    ) -> list[JobEvent]:
        """The events of one stream entry, in order: its own fields, or its `events` (packed:
        each gets the id ``<entry id>:<index>``)."""
        entry = decoded(entry_id, "replace")
        text = {decoded(k, "replace"): decoded(v, "replace") for k, v in fields.items()}
        if "events" not in text:
            return [cls._made(queue, entry, text.get("job", ""), text.get("event", ""), text)]
        try:
            rows = _packed_decode(text["events"])
            return [cls._row(queue, f"{entry}:{i}", row) for i, row in enumerate(rows)]
        except (msgspec.DecodeError, IndexError) as exc:
            raise JobError(
                f"entry {entry} of queue {queue!r}'s job events has an `events` field that is "
                f"not a JSON array of [job, event, attempt, task, ...] ({exc}): it was not "
                "written by redline; delete it (XDEL) or read past it with since="
            ) from exc

    @classmethod
    def _row(cls, queue: str, event_id: str, row: list[Any]) -> JobEvent:
        rest = dict(zip(("attempt", "task", "progress", "message"), row[2:], strict=False))
        return cls._made(queue, event_id, row[0], row[1], rest)

    @classmethod
    def _made(
        cls, queue: str, event_id: str, job: str, event: str, rest: Mapping[str, Any]
    ) -> JobEvent:
        progress = rest.get("progress")
        return cls(
            id=event_id,
            queue=queue,
            job=str(job),
            event=str(event),
            attempt=int(rest.get("attempt") or 0),
            task=str(rest.get("task", "")),
            progress=float(progress) if progress else None,
            message=str(rest.get("message", "")),
        )


_EVENT_ID = re.compile(r"\$|\d+(-\d+)?(:\d+)?")


def _resume_point(since: str) -> tuple[str, int]:
    """(stream entry id, index of the last event seen in it; -1: all of it) of an event id."""
    if not _EVENT_ID.fullmatch(since):
        raise JobError(
            f"since={since!r} is not an event id: pass the id of the last event seen (e.g. "
            "1765094400180-0 or 1765094400180-0:3), '0-0' for all kept, or '$' for new ones"
        )
    entry, _, index = since.partition(":")
    return entry, int(index) if index else -1


async def _rest_of_entry(client: AsyncClient, queue: str, since: str) -> list[JobEvent]:
    """The events after `since` in its own entry, when `since` names one inside an entry."""
    entry, index = _resume_point(since)
    if index < 0:
        return []
    found: list[Any] = await client.xrange(job_keys(queue).events, entry, entry)  # type: ignore[assignment]
    events = [e for entry_id, fields in found for e in JobEvent.in_entry(queue, entry_id, fields)]
    return events[index + 1 :]


async def job_events(
    client: AsyncClient,
    queue: str,
    since: str = "0-0",
    follow: bool = False,
    block: float = 1.0,
    count: int = 500,
) -> AsyncIterator[JobEvent]:
    """The events of `queue` after event id `since` ("0-0": all it keeps; "$": only new
    ones), in order. With `follow`, wait for more (re-checking every `block` seconds) until
    the caller stops iterating; else stop at the end. Resume after a restart by passing the
    last event's `id` as `since`: no event is missed, none is repeated (an id inside a packed
    entry, ``<entry id>:<index>``, resumes with the rest of that entry)."""
    key = job_keys(queue).events
    for event in await _rest_of_entry(client, queue, since):
        yield event
    last = _resume_point(since)[0]
    if last == "$":
        newest = await client.xrevrange(key, count=1)
        last = decoded(newest[0][0], "replace") if newest else "0-0"
    while True:
        wait = int(block * 1000) if follow else None
        reply: Any = await client.xread({key: last}, count=count, block=wait)
        entries: list[Any] = reply[0][1] if reply else []
        for entry_id, fields in entries:
            last = decoded(entry_id, "replace")
            for event in JobEvent.in_entry(queue, entry_id, fields):
                yield event
        if not entries and not follow:
            return
        await asyncio.sleep(0)


_RUNNING, _COMPLETE = JobState.RUNNING.value, JobState.COMPLETE.value  # read once: a few per job


def started(queue: str, doc: JobDocument, attempt: int) -> Pending:
    now = time.monotonic()
    return Pending(queue, doc.id, "started", _RUNNING, attempt, doc.task, "", "", LIVE_TTL, now)


def finished(
    queue: str, doc: JobDocument, attempt: int, state: JobState, error: str = ""
) -> list[Pending]:
    """The events of a settled run ending in `state` (RETRYING: failed, then retried)."""
    if state is JobState.COMPLETE:  # most runs: one event, made directly
        ttl = doc.result_ttl or 0
        return [Pending(queue, doc.id, "completed", _COMPLETE, attempt, doc.task, "", "", ttl)]
    base = Pending(queue, doc.id, "", "", attempt, doc.task, "", error)
    if state in (JobState.CANCELLED, JobState.EXPIRED):  # never ran, or stopped: not failed
        return [_with(base, state.value, state, FAILURE_TTL, "")]
    failed = _with(base, "failed", None, LIVE_TTL, error)
    if state is JobState.DEAD:
        return [failed, _with(base, "dead", state, FAILURE_TTL, error)]
    return [failed, _with(base, "retried", JobState.RETRYING, LIVE_TTL, "")]


def _with(base: Pending, event: str, state: JobState | None, ttl: int, message: str) -> Pending:
    value = "" if state is None else state.value
    return Pending(base.queue, base.job, event, value, base.attempt, base.task, "", message, ttl)


def progressed(
    job: str, queue: str, task: str, attempt: int, fraction: float, message: str
) -> Pending:
    return Pending(queue, job, "progress", "", attempt, task, repr(fraction), message)
