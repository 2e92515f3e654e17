"""Enqueueing jobs, and reading what became of them.

    job = await enqueue(client, send_mail, "a@example.com", subject="hi")
    job = await enqueue_in(client, 60, send_mail, "b@example.com")          # in a minute
    job = await enqueue_at(client, tomorrow_9am, send_mail, "c@example.com")
    value = await job.result(timeout=10)     # needs result_ttl on the task

A producer that does not import the worker's code names the task: ``Task.ref("app.send_mail",
queue="mail")``. Enqueueing a unique task while a job with the same key is pending does nothing
and returns None.

What became of a job is written by the worker beside its queue: a hash per job that completes
with ``result_ttl`` set (`JobKeys.record`, kept that long), and one entry per failed job in
`JobKeys.failures`, kept within the queue's retention (like its dead letters: by default the
newest 10,000, none older than 180 days; `ReliableQueue.set_retention`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, overload

import msgspec

from redline.connection import AsyncClient, SyncClient
from redline.errors import JobError, JobFailed, JobTimeout
from redline.jobs.control import cancel_job
from redline.jobs.document import JobDocument, JobState, decode_value, encode_value, job_keys
from redline.jobs.events import record_enqueued, record_enqueued_sync
from redline.jobs.placement import placement, with_expiry
from redline.jobs.status import JobStatus, job_status
from redline.jobs.task import Signature, Task
from redline.queue import ReliableQueue
from redline.runtime.tracing import tracer
from redline.scripting.scripts import run_batched, run_held

__all__ = [
    "Enqueueable",
    "Job",
    "JobRecord",
    "enqueue",
    "enqueue_at",
    "enqueue_in",
    "enqueue_sync",
    "push_jobs",
    "read_records",
]

RECENT = 1000  # ids kept in a queue's list of recent job records

H = TypeVar("H", covariant=True)
S = TypeVar("S", covariant=True)


class Enqueueable(Protocol[H, S]):
    """What `enqueue` takes besides a task: a workflow (`redline.jobs.workflow`), which
    enqueues itself and returns its handle."""

    async def enqueue_with(self, client: AsyncClient) -> H: ...

    def enqueue_with_sync(self, client: SyncClient) -> S: ...


@dataclass(frozen=True)
class JobRecord:
    """What the worker recorded about a job (one hash; see the module docstring)."""

    id: str
    state: JobState
    task: str = ""
    args: str = ""
    attempts: int = 0
    result: str | None = None
    error: str = ""
    traceback: str = ""
    enqueued_at: float = 0.0
    finished_at: float = 0.0

    @classmethod
    def from_hash(cls, job_id: str, fields: Mapping[bytes, bytes]) -> JobRecord:
        text = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        return cls(
            id=job_id,
            state=JobState(text.get("state", "complete")),
            task=text.get("task", ""),
            args=text.get("args", ""),
            attempts=int(text.get("attempts", 0)),
            result=text.get("result"),
            error=text.get("error", ""),
            traceback=text.get("traceback", ""),
            enqueued_at=float(text.get("enqueued_at", 0)),
            finished_at=float(text.get("finished_at", 0)),
        )

    def to_hash(self) -> dict[str, str]:
        fields = {
            "state": self.state.value,
            "task": self.task,
            "args": self.args,
            "attempts": str(self.attempts),
            "error": self.error,
            "traceback": self.traceback,
            "enqueued_at": repr(self.enqueued_at),
            "finished_at": repr(self.finished_at),
        }
        if self.result is not None:
            fields["result"] = self.result
        return fields

    @classmethod
    def from_json(cls, job_id: str, text: bytes) -> JobRecord:
        """A failure record as `to_json` wrote it."""
        fields = json.loads(text)
        return cls.from_hash(job_id, {k.encode(): v.encode() for k, v in fields.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_hash(), separators=(",", ":"))

    @property
    def value(self) -> Any:
        """The job's return value (None when not recorded)."""
        return None if self.result is None else decode_value(self.result, f"job {self.id} result")


@dataclass(frozen=True)
class Job:
    """A handle on an enqueued job."""

    id: str
    queue: str
    task: str
    client: AsyncClient
    result_ttl: int | None = None

    async def record(self) -> JobRecord | None:
        """What the worker recorded, or None (not finished, or not recorded)."""
        [found] = await read_records(self.client, self.queue, [self.id])
        return found

    async def status(self) -> JobStatus | None:
        """State, attempts, progress and times (`redline.jobs.status`); None when nothing is
        kept: a completed job whose task keeps no results, or an unknown id."""
        found = await job_status(self.client, self.queue, self.id)
        if found is not None:
            return found
        record = await self.record()
        if record is None:
            return None
        return JobStatus(
            self.id, record.state, record.attempts, finished_at=record.finished_at or None
        )

    async def cancel(self) -> bool:
        """Cancel the job (`redline.jobs.control`): a waiting or scheduled one never runs, a
        running one is cancelled where it runs. False when it had already finished."""
        return await cancel_job(self.client, self.queue, self.id)

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Wait for the job's return value; JobFailed when it was dead-lettered.

        Raises JobTimeout after `timeout` seconds, and JobError at once when the task keeps no
        results (set ``result_ttl`` on it).
        """
        if not self.result_ttl:
            raise JobError(f"task {self.task!r} keeps no results: give it result_ttl=<seconds>")
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            found = await self.record()
            if found is not None and found.state is JobState.COMPLETE:
                return found.value
            if found is not None and found.state is JobState.DEAD:
                raise JobFailed(self.id, found.error, found.traceback)
            if found is not None and found.state is JobState.CANCELLED:
                raise JobFailed(self.id, "cancelled", "")
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {self.id} ({self.task}) has no result after {timeout}s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)


async def read_records(
    client: AsyncClient, queue: str, ids: Sequence[str]
) -> list[JobRecord | None]:
    """The records of jobs `ids` of `queue`, in one round trip: a completed job's hash if it
    is kept, else its failure record, else None."""
    keys = job_keys(queue)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(keys.record(job_id))
    if ids:
        pipe.hmget(keys.failures, list(ids))
    *kept, failures = await pipe.execute() if ids else [[]]
    return [
        JobRecord.from_hash(i, fields)
        if fields
        else (JobRecord.from_json(i, failed) if failed else None)
        for i, fields, failed in zip(ids, kept, failures, strict=True)
    ]


def _document(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], due: float | None
) -> JobDocument:
    """The document of a job of `task` with these arguments, due at `due` (None: now)."""
    doc = JobDocument(
        task=task.name,
        args=args,
        kwargs=kwargs,
        queue=task.queue,
        unique=None if task.unique is False else task.unique_key(args, kwargs),
        result_ttl=task.result_ttl,
    )
    return with_expiry(doc, task, due) if task.expires else doc


async def push_jobs(client: AsyncClient, queue: str, *payloads: bytes) -> list[str]:
    """Put job documents on `queue` (one round trip); returns the queue's message ids."""
    # A producer never pops: a fixed consumer name spares the per-call host name and uuid.
    return await ReliableQueue(client, consumer="producer").push(queue, *payloads)


async def _enqueue(
    client: AsyncClient, task: Task[..., Any], due: float | None, args: Any, kwargs: Any
) -> Job | None:
    doc = _document(task, args, kwargs, due)
    traced = tracer()
    if traced is None:
        return await _put(client, task, due, doc)
    with traced.publish(task.queue, doc.id) as carrier:
        return await _put(client, task, due, msgspec.structs.replace(doc, trace=carrier))


async def _put(
    client: AsyncClient, task: Task[..., Any], due: float | None, doc: JobDocument
) -> Job | None:
    # One script call places the job and records its enqueued event (so no worker's started
    # event can precede it, and a unique enqueue that is a no-op records nothing); a replace
    # records its event after it, as a job it replaced may be running.
    placed = placement(task, due, doc, doc.encode())
    reply = await run_batched(client, placed.script, placed.keys, placed.args)
    if not placed.enqueued(reply):
        return None
    if placed.script == "job_replace":
        await record_enqueued(client, task.queue, doc.id, task.name, due)
    return Job(doc.id, task.queue, task.name, client, task.result_ttl)


@overload
async def enqueue(client: AsyncClient, task: Enqueueable[H, Any], /) -> H: ...


@overload
async def enqueue(
    client: AsyncClient, task: Task[..., Any], /, *args: Any, **kwargs: Any
) -> Job | None: ...


async def enqueue(client: AsyncClient, task: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Enqueue a run of `task` with these arguments now. None: a unique job is still pending.

    A workflow (``chain``, ``group``, ``chord``, ``workflow``) is enqueued whole, and its
    handle returned (`redline.jobs.workflow`); a signature (``task.s(1)``) as its task with
    its arguments."""
    if not isinstance(task, Task):
        return await _enqueue_other(client, task, args, kwargs)
    return await _enqueue(client, task, None, args, kwargs)


def _other(task: Any, args: Any, kwargs: Any) -> None:
    if not hasattr(task, "enqueue_with"):
        raise JobError(
            f"enqueue: {task!r:.80} is not a task or a workflow: pass a @task function, "
            "Task.ref(name), or a chain/group/chord/workflow"
        )
    if args or kwargs:
        raise JobError("enqueue: a workflow takes no arguments: give them to its signatures")


async def _enqueue_other(client: AsyncClient, task: Any, args: Any, kwargs: Any) -> Any:
    if isinstance(task, Signature) and not (args or kwargs):  # one job, as task(*args)
        return await _enqueue(client, task.task, None, task.args, task.kwargs)
    _other(task, args, kwargs)
    return await task.enqueue_with(client)


async def enqueue_in(
    client: AsyncClient, delay: float, task: Task[..., Any], /, *args: Any, **kwargs: Any
) -> Job | None:
    """Enqueue a run of `task` that becomes due `delay` seconds from now."""
    if delay < 0:
        raise JobError(f"enqueue_in: delay {delay!r} must be >= 0 seconds")
    return await _enqueue(client, task, time.time() + delay, args, kwargs)


async def enqueue_at(
    client: AsyncClient,
    when: dt.datetime | float,
    task: Task[..., Any],
    /,
    *args: Any,
    **kwargs: Any,
) -> Job | None:
    """Enqueue a run of `task` due at `when` (an aware datetime, or unix seconds)."""
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            raise JobError(f"enqueue_at: {when!r} has no timezone: pass an aware datetime")
        when = when.timestamp()
    return await _enqueue(client, task, when, args, kwargs)


@overload
def enqueue_sync(client: SyncClient, task: Enqueueable[Any, S], /) -> S: ...


@overload
def enqueue_sync(
    client: SyncClient, task: Task[..., Any], /, *args: Any, **kwargs: Any
) -> str | None: ...


def enqueue_sync(client: SyncClient, task: Any, /, *args: Any, **kwargs: Any) -> Any:
    """`enqueue` for code without an event loop (a Flask or Django view, a script): the same
    document, the same scripts, on a blocking client. Returns the job id (None: a unique job
    with the key is still pending); `Job` handles need the asyncio client. A workflow returns
    its `SyncWorkflowHandle`."""
    if isinstance(task, Signature) and not (args or kwargs):
        return enqueue_sync(client, task.task, *task.args, **task.kwargs)
    if not isinstance(task, Task):
        _other(task, args, kwargs)
        return task.enqueue_with_sync(client)
    doc = _document(task, args, kwargs, None)
    traced = tracer()
    if traced is None:
        return _put_sync(client, task, doc)
    with traced.publish(task.queue, doc.id) as carrier:
        return _put_sync(client, task, msgspec.structs.replace(doc, trace=carrier))


def _put_sync(client: SyncClient, task: Task[..., Any], doc: JobDocument) -> str | None:
    """Blocking twin of `_put`."""
    placed = placement(task, None, doc, doc.encode())
    if not placed.enqueued(run_held(client, placed.script, placed.keys, placed.args)):
        return None
    if placed.script == "job_replace":
        record_enqueued_sync(client, task.queue, doc.id, task.name, None)
    return doc.id


def describe_args(doc: JobDocument) -> str:
    """The arguments of a job as one line of JSON (for records and the dashboard)."""
    return encode_value({"args": list(doc.args), "kwargs": dict(doc.kwargs)}, f"job {doc.id}")
