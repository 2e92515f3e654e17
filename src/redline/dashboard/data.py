"""What the dashboard reads from Redis: queues, messages, jobs, service instances, metrics.

Everything goes through the owning module's API (the ReliableQueue for queues, the jobs
module's keys for job records); nothing here writes except the retry and delete actions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redline.connection import AsyncClient, text
from redline.errors import JobSerializationError
from redline.jobs.control import is_paused
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.job import JobRecord, describe_args, read_records
from redline.jobs.priority import priority_counts, priority_key
from redline.jobs.worker import QUEUES_KEY
from redline.queue import QueuedMessage, ReliableQueue
from redline.runtime.metrics import HISTOGRAM, metrics_key, read_metrics
from redline.scaling import registry
from redline.scaling.registry import Instance
from redline.scaling.rollout import desired_revision, rollout_state

__all__ = [
    "LISTS",
    "JobRow",
    "Listing",
    "QueueRow",
    "dead_letters",
    "jobs_in_state",
    "list_queues",
    "listing",
    "messages",
    "metrics_hashes",
    "queue_rows",
    "service_instances",
]

SHOWN = 50  # rows per list on a page
SEARCHED = 2000  # messages of a list a search looks through


@dataclass(frozen=True)
class QueueRow:
    """One queue's counts, and its job counters when it carries jobs."""

    name: str
    waiting: int
    inflight: int
    delayed: int
    dead: int
    scheduled: int = 0
    complete: int = 0
    failed: int = 0
    dropped: int = 0  # dead letters dropped by the queue's retention
    records_dropped: int = 0  # job failure records dropped by it
    dead_max: int = 0  # the retention: entries and days kept
    dead_days: float = 0.0
    paused: bool = False  # a paused job queue (`redline queue pause`)
    expired: int = 0
    # (priority, its queue key, jobs waiting) for priorities 1-9 in use, highest first
    priorities: list[tuple[int, str, int]] = field(default_factory=list)
    # the counts above summed over every priority in use (each is a queue of its own)
    all_waiting: int = 0
    all_inflight: int = 0
    all_delayed: int = 0
    all_dead: int = 0


@dataclass(frozen=True)
class JobRow:
    """A message or job as a table row: the job's fields when the payload is a job document."""

    id: str
    state: str
    task: str = ""
    args: str = ""
    attempts: int = 0
    error: str = ""
    traceback: str = ""
    payload: str = ""
    age: float | None = None  # seconds since delivered, dead-lettered or finished
    remaining: float | None = None  # seconds until its lease ends (in flight) or it is due
    qid: str = ""  # the queue's message id (what retry and delete take)
    consumer: str = ""  # who holds it (in flight), when known: see ReliableQueue.holders


def _texts(fields: dict[Any, Any]) -> dict[str, str]:
    return {text(k, "replace"): text(v, "replace") for k, v in fields.items()}


def show_bytes(payload: bytes, limit: int = 300) -> str:
    """A payload as text for a page (invalid UTF-8 escaped, long ones cut)."""
    text = payload.decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else text[:limit] + "…"


async def list_queues(client: AsyncClient, configured: Sequence[str]) -> list[str]:
    """Configured queues, then those that workers registered (``redline:jobs:queues``)."""
    registered = await client.smembers(QUEUES_KEY)
    names = [*configured, *sorted(text(n, "replace") for n in registered)]
    return list(dict.fromkeys(names))


async def queue_rows(client: AsyncClient, names: Sequence[str]) -> list[QueueRow]:
    return [await _queue_row(client, name) for name in names]


async def _queue_row(client: AsyncClient, name: str) -> QueueRow:
    queue = ReliableQueue(client)
    info, keys = await queue.info(name), job_keys(name)
    stats = _texts(await client.hgetall(keys.stats))
    counts = await priority_counts(client, name)
    levels = [(p, priority_key(name, p), n) for p, n in counts.items()]
    infos = [info, *[await queue.info(key) for p, key, _ in levels if p]]
    return QueueRow(
        name,
        info.waiting,
        info.inflight,
        info.delayed,
        info.dead,
        await client.zcard(keys.scheduled),
        int(stats.get("complete", 0)),
        int(stats.get("failed", 0)),
        info.dropped,
        info.records_dropped,
        info.dead_max,
        info.dead_age / 86400,
        await is_paused(client, name),
        int(stats.get("expired", 0)),
        [level for level in levels if level[0]],
        sum(i.waiting for i in infos),
        sum(i.inflight for i in infos),
        sum(i.delayed for i in infos),
        sum(i.dead for i in infos),
    )


def _row(message: QueuedMessage, state: str) -> JobRow:
    try:
        doc = JobDocument.decode(message.payload)
    except JobSerializationError:
        return JobRow(
            message.id,
            state,
            payload=show_bytes(message.payload),
            attempts=message.deliveries,
            error=message.reason,
            age=message.elapsed,
            remaining=message.remaining,
            qid=message.id,
            consumer=message.consumer,
        )
    args = show_bytes(describe_args(doc).encode())
    return JobRow(
        doc.id,
        state,
        doc.task,
        args,
        message.deliveries,
        message.reason.splitlines()[-1] if message.reason else "",
        message.reason,
        show_bytes(message.payload),
        message.elapsed,
        message.remaining,
        message.id,
        message.consumer,
    )


LISTS = ("waiting", "inflight", "delayed", "scheduled", "dead")


@dataclass(frozen=True)
class Listing:
    """One page of one of a queue's lists: `rows` from `start`, of `total` (matching `query`)."""

    kind: str
    rows: list[tuple[str, JobRow]]
    start: int = 0
    total: int = 0
    query: str = ""

    @property
    def more(self) -> bool:
        return self.start + len(self.rows) < self.total


async def _read(client: AsyncClient, name: str, kind: str, start: int, count: int) -> list[JobRow]:
    queue = ReliableQueue(client)
    if kind == "dead":
        found = await queue.dead(name, start=start, count=count)
    elif kind == "scheduled":
        return await _scheduled(client, name, start, count)
    else:
        found = await queue.inspect(
            name, pending=kind == "inflight", start=start, count=count, delayed=kind == "delayed"
        )
    state = {"inflight": JobState.RUNNING.value, "dead": JobState.DEAD.value}.get(kind, kind)
    return [_row(m, state) for m in found]


def _matches(row: JobRow, query: str) -> bool:
    query = query.lower()
    return any(query in v.lower() for v in (row.id, row.qid, row.task, row.payload, row.args))


async def listing(
    client: AsyncClient, name: str, kind: str, start: int = 0, query: str = "", total: int = 0
) -> Listing:
    """A page of queue `name`'s `kind` list (one of `LISTS`); with `query`, of the messages
    whose id or payload contains it (among the first `SEARCHED` of the list)."""
    if kind not in LISTS:
        raise ValueError(f"no list {kind!r}: use one of {', '.join(LISTS)}")
    if not query:
        rows = await _read(client, name, kind, start, SHOWN)
        return Listing(kind, [(r.qid, r) for r in rows], start, total)
    found = [r for r in await _read(client, name, kind, 0, SEARCHED) if _matches(r, query)]
    return Listing(
        kind, [(r.qid, r) for r in found[start : start + SHOWN]], start, len(found), query
    )


async def messages(client: AsyncClient, name: str, pending: bool) -> list[tuple[str, JobRow]]:
    """Waiting (or in-flight) messages of a queue: (queue message id, row)."""
    return (await listing(client, name, "inflight" if pending else "waiting")).rows


async def dead_letters(client: AsyncClient, name: str) -> Listing:
    return await listing(client, name, "dead")


async def _records(client: AsyncClient, name: str) -> list[JobRecord]:
    ids = [text(i, "replace") for i in await client.lrange(job_keys(name).recent, 0, SHOWN * 5)]
    return [r for r in await read_records(client, name, ids) if r is not None]


async def _scheduled(client: AsyncClient, name: str, start: int, count: int) -> list[JobRow]:
    rows = []
    found: list[tuple[bytes, float]] = await client.zrange(  # type: ignore[assignment]
        job_keys(name).scheduled, start, start + count - 1, withscores=True
    )
    for payload, due in found:
        doc = JobDocument.decode(payload)
        args = show_bytes(describe_args(doc).encode())
        row = JobRow(doc.id, "scheduled", doc.task, args, payload=show_bytes(payload))
        rows.append(replace(row, remaining=due - time.time(), qid=doc.id))
    return rows


async def jobs_in_state(client: AsyncClient, name: str, state: JobState) -> list[JobRow]:
    """The jobs of queue `name` in `state` (at most a page)."""
    if state in (JobState.WAITING, JobState.RUNNING):
        return [row for _, row in await messages(client, name, state is JobState.RUNNING)]
    if state is JobState.DEAD:
        return [row for _, row in (await dead_letters(client, name)).rows]
    if state is JobState.SCHEDULED:
        return await _scheduled(client, name, 0, SHOWN)
    return [
        JobRow(
            r.id,
            r.state.value,
            r.task,
            r.args,
            r.attempts,
            r.error,
            r.traceback,
            r.result or "",
            time.time() - r.finished_at,
        )
        for r in await _records(client, name)
        if r.state is state
    ][:SHOWN]


async def service_instances(client: AsyncClient, namespaces: Sequence[str]) -> list[Instance]:
    """Live instances of every registered namespace (`redline.scaling.registry`) and of
    `namespaces`."""
    registered = list(await registry.services(client))
    found: list[Instance] = []
    for ns in dict.fromkeys([*registered, *namespaces]):
        found += await registry.instances(client, ns)
    return found


@dataclass(frozen=True)
class RolloutRow:
    """A service's desired revision and its last rollout (`redline.scaling.rollout`)."""

    namespace: str
    desired: str
    revision: str
    state: str
    detail: str
    t: float


async def rollout_rows(client: AsyncClient, namespaces: Sequence[str]) -> list[RolloutRow]:
    """The last rollout of every namespace in `namespaces` that had one."""
    rows = []
    for ns in namespaces:
        state = await rollout_state(client, ns)
        if state:
            detail = state.get("msg") or f"from revision {state.get('from', '?')}"
            desired = (await desired_revision(client, ns)).describe()
            revision, t = state.get("revision", ""), float(state.get("t", 0))
            rows.append(RolloutRow(ns, desired, revision, state.get("state", ""), detail, t))
    return rows


@dataclass(frozen=True)
class MetricsRow:
    key: str
    count: int
    sum: float
    max: float
    histogram: list[tuple[str, int]]

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0


async def metrics_hashes(client: AsyncClient, namespaces: Sequence[str]) -> list[MetricsRow]:
    """Every ``<ns>:metrics:<name>`` hash of the registered and given namespaces, with its
    histogram bins (in order; only when the metric has any)."""
    registered = list(await registry.services(client))
    rows = []
    for ns in dict.fromkeys([*registered, *namespaces]):
        for name, fields in (await read_metrics(client, ns)).items():
            bins = [(b, fields.get(b, 0)) for b in HISTOGRAM]
            rows.append(
                MetricsRow(
                    metrics_key(ns, name),
                    fields.get("count", 0),
                    fields.get("sum", 0),
                    fields.get("max", 0),
                    bins if any(n for _, n in bins) else [],
                )
            )
    return rows
