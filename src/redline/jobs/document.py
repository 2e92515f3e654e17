"""The job document: what a job looks like on the queue, in one documented JSON format.

A job is one message on a ReliableQueue, its payload a UTF-8 JSON object::

    {"v": 1, "id": "5f0c…", "task": "app.tasks.send_mail", "args": ["a@example.com"],
     "kwargs": {"subject": "hi"}, "enqueued_at": 1767225600.25, "queue": "jobs",
     "unique": "mail:a@example.com", "result_ttl": 300}

- ``v`` is the format version (1). ``unique`` and ``result_ttl`` are left out when not set.
- ``expires`` (left out when not set) is the time (unix seconds) by which the job must have
  started: a worker drops it as expired after that, never runs it.
- ``trace`` (left out when empty) is the W3C trace context of the enqueue, e.g.
  ``{"traceparent": "00-…-…-01"}``, written when OpenTelemetry tracing is on
  (docs/integrations.md); a worker's run of the job continues that trace.
- ``workflow`` (left out when not set) names the workflow a job is a member of and its member,
  ``{"id": "…", "member": "b"}`` (`redline.jobs.workflow`): the worker reports its outcome
  to the workflow before acknowledging it.
- ``args``/``kwargs`` are plain JSON: str, int, float, bool, None, lists and objects with string
  keys. Tuples arrive as lists. ``bytes`` are refused (encode them yourself, e.g. base64 text):
  a job document is readable by any language and by a person looking at the queue, and never
  pickled, so a queue writer can never make a worker run code of its choosing.
- How many times a job was delivered is not in the document: the queue counts deliveries
  beside the message (the document is pushed once and never rewritten), and the worker reads
  that count as the job's attempt number.

Any client can enqueue a job: ``redis-cli LPUSH jobs '{"v":1,"id":"x1","task":"app.tasks.ping",
"args":[],"kwargs":{},"enqueued_at":0,"queue":"jobs"}'``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from redline.errors import JobSerializationError
from redline.keys import derived

__all__ = [
    "FORMAT_VERSION",
    "JobDocument",
    "JobState",
    "decode_value",
    "encode_value",
    "job_keys",
    "new_job_id",
]

FORMAT_VERSION = 1


class JobState(StrEnum):
    """Where a job is. Waiting, running and dead come from the queue; the rest from job records."""

    SCHEDULED = "scheduled"
    WAITING = "waiting"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETE = "complete"
    DEAD = "dead"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def new_job_id() -> str:
    """A fresh job id (random 128 bits, hex)."""
    return os.urandom(16).hex()  # a fifth of uuid4().hex's time, the same form


def _refuse(value: object) -> Any:
    kind = type(value).__name__
    hint = (
        "encode bytes as text first, e.g. base64.b64encode(data).decode()"
        if isinstance(value, bytes | bytearray | memoryview)
        else "pass plain JSON values (str, int, float, bool, None, list, dict with str keys)"
    )
    raise TypeError(f"{kind} value {_short(value)} is not JSON: {hint}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse
)
_FAST = msgspec.json.Encoder()  # for documents of plain scalars only (see `_plain`)
_LONG = 1 << 64


def encode_value(value: Any, what: str) -> str:
    """`value` as compact JSON; a JobSerializationError naming `what` when it is not JSON."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise JobSerializationError(f"{what}: {exc}") from None


def decode_value(text: str | bytes, what: str) -> Any:
    """The inverse of `encode_value`."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        pass  # json is more lenient (NaN, 1e400, lone surrogates): it decides
    try:
        return json.loads(text)
    except ValueError as exc:
        raise JobSerializationError(f"{what}: not JSON ({exc}): {_short(text)}") from None


def _plain(values: Iterable[Any]) -> bool:
    """Whether every value is a str, bool, None, int or finite float: JSON that msgspec's
    encoder writes as `encode_value` would, ten times faster (it would also write bytes,
    datetimes or NaN, which a job must refuse: those, and containers, go through json)."""
    for value in values:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if (kind is int and -_LONG < value < _LONG) or (kind is float and math.isfinite(value)):
            continue
        return False
    return True


def _check_args(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    for index, value in enumerate(args):
        encode_value(value, f"task {task}: argument {index}")
    for name, value in kwargs.items():
        encode_value(value, f"task {task}: keyword argument {name!r}")


class JobDocument(msgspec.Struct, frozen=True):
    """One job as it travels on the queue (see the module docstring for the JSON form).

    A frozen msgspec struct rather than a dataclass: every enqueue and every run makes one, and
    it is made in a tenth of the time. Copy one with `msgspec.structs.replace`.
    """

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = msgspec.field(default_factory=dict)
    queue: str = "jobs"
    id: str = msgspec.field(default_factory=new_job_id)
    enqueued_at: float = msgspec.field(default_factory=time.time)
    unique: str | None = None
    result_ttl: int | None = None
    trace: Mapping[str, str] = msgspec.field(default_factory=dict)
    expires: float | None = None
    workflow: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "id": self.id,
            "task": self.task,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "enqueued_at": self.enqueued_at,
            "queue": self.queue,
        }
        if self.unique is not None:
            doc["unique"] = self.unique
        if self.result_ttl is not None:
            doc["result_ttl"] = self.result_ttl
        if self.trace:
            doc["trace"] = dict(self.trace)
        if self.expires is not None:
            doc["expires"] = self.expires
        if self.workflow is not None:
            doc["workflow"] = dict(self.workflow)
        return doc

    def plain(self) -> bool:
        """Whether the arguments are all str, bool, None, int or finite float (keywords named
        by str): `encode` then takes its fast path, and cannot fail. (No arguments, or no
        keywords, are looked at with no call: a job of none is common.)"""
        args, kwargs = self.args, self.kwargs
        return (not args or _plain(args)) and (
            not kwargs or (_plain(kwargs.values()) and all(type(k) is str for k in kwargs))
        )

    def encode(self) -> bytes:
        """The payload to push; JobSerializationError names an argument that is not JSON."""
        if self.plain():
            return _FAST.encode(self.to_json())  # (`encode_plain`, a frame less per enqueue)
        try:
            return encode_value(self.to_json(), f"task {self.task}").encode()
        except JobSerializationError:
            _check_args(self.task, self.args, self.kwargs)  # names the argument at fault
            raise

    def encode_plain(self) -> bytes:
        """`encode` of a document already found `plain` (bulk enqueue checks each once)."""
        return _FAST.encode(self.to_json())

    @classmethod
    def decode(cls, payload: bytes | str, queue: str = "jobs") -> JobDocument:
        """Read a payload; JobSerializationError says what is wrong with one that is not a job."""
        doc = decode_value(payload, "job document")
        if not isinstance(doc, dict) or not isinstance(doc.get("task"), str):
            raise JobSerializationError(
                f"not a job document (expected a JSON object with a 'task' name): {_short(doc)}"
            )
        if doc.get("v", FORMAT_VERSION) != FORMAT_VERSION:
            raise JobSerializationError(f"job document version {doc.get('v')!r} is not 1")
        args, kwargs = doc.get("args", []), doc.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise JobSerializationError(
                f"job {doc.get('id')!r}: 'args' must be a list and 'kwargs' an object"
            )
        return cls(
            task=doc["task"],
            args=tuple(args),
            kwargs=kwargs,
            queue=str(doc.get("queue", queue)),
            id=str(doc.get("id") or new_job_id()),
            enqueued_at=float(doc.get("enqueued_at", 0.0)),
            unique=doc.get("unique"),
            result_ttl=doc.get("result_ttl"),
            trace=_trace(doc.get("trace")),
            expires=_seconds(doc.get("expires")),
            workflow=_workflow(doc.get("workflow")),
        )


def _seconds(value: Any) -> float | None:
    """An optional time of a document; one that is not a number is ignored."""
    return float(value) if isinstance(value, int | float) else None


def _workflow(value: Any) -> Mapping[str, str] | None:
    """The workflow of a document: an object with string `id` and `member`, else None."""
    if isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("id", "member")):
        return {"id": value["id"], "member": value["member"]}
    return None


def _trace(value: Any) -> Mapping[str, str]:
    """The trace context of a document; one that is not an object of strings is ignored (a
    broken trace must never stop a job)."""
    if not value or not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True)
class JobKeys:
    """The keys jobs keep beside a queue (all in the queue's cluster slot)."""

    queue: str

    def record(self, job_id: str) -> str:
        """Hash of a completed job's outcome kept `result_ttl` seconds: state, result,
        attempts, times (failed jobs' records are in `failures`)."""
        return derived(self.queue, "job", job_id)

    def status(self, job_id: str) -> str:
        """Hash of a live job's state, attempt, progress and times (`redline.jobs.events`)."""
        return self._status + job_id

    @functools.cached_property
    def _status(self) -> str:
        # Every event and every enqueue names a status hash: its prefix is built once.
        return derived(self.queue, "job-status", "")

    @property
    def events(self) -> str:
        """Capped stream of the queue's job state changes (`redline.jobs.events`)."""
        return derived(self.queue, "job-events")

    @property
    def paused(self) -> str:
        """Present while the queue is paused (`redline.jobs.control`)."""
        return derived(self.queue, "job-paused")

    @property
    def cancelled(self) -> str:
        """Sorted set of job ids asked to be cancelled, by when (`redline.jobs.control`)."""
        return derived(self.queue, "job-cancelled")

    @property
    def failures(self) -> str:
        """Hash: job id -> the record (JSON) of a job that failed (retried or dead), kept
        within the queue's retention (`ReliableQueue.set_retention`) rather than by a TTL."""
        return derived(self.queue, "job-failures")

    @property
    def failed(self) -> str:
        """Sorted set: job id -> when its failure record was written (ms): oldest dropped first."""
        return derived(self.queue, "job-failed")

    def unique(self, key: str) -> str:
        """Lock held while a unique job is pending; its value is the job id."""
        return derived(self.queue, "job-unique", key)

    @property
    def scheduled(self) -> str:
        """Sorted set of job documents by the time they are due (enqueue_in / enqueue_at)."""
        return derived(self.queue, "job-scheduled")

    @property
    def stats(self) -> str:
        """Hash of counters: complete, failed, retried (rates on the dashboard)."""
        return derived(self.queue, "job-stats")

    @property
    def recent(self) -> str:
        """Capped list of the ids of jobs whose record was written (newest first)."""
        return derived(self.queue, "job-recent")


@functools.lru_cache(maxsize=4096)
def job_keys(queue: str) -> JobKeys:
    """The job keys of `queue` (cached: immutable, and asked for per job)."""
    return JobKeys(queue)
