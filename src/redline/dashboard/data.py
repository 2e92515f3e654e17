"""What the dashboard reads from Redis: queues, messages, jobs, service instances, metrics.

Everything goes through the owning module's API (the ReliableQueue for queues, the jobs
module's keys for job records); nothing here writes except the retry and delete actions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.connection import AsyncClient, text
from redline.errors import JobSerializationError
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.job import JobRecord, read_records
from redline.jobs.priority import priority_counts, priority_key
from redline.jobs.worker import QUEUES_KEY
from redline.queue import QueuedMessage, ReliableQueue
from redline.runtime.metrics import HISTOGRAM, metrics_key, read_metrics
from redline.scaling import registry
from redline.scaling.registry import Instance
from redline.scaling.rollout import desired_revision, rollout_state

__all__ = [
    "JobRow",
    "QueueRow",
    "dead_letters",
    "jobs_in_state",
    "list_queues",
    "messages",
    "metrics_hashes",
    "queue_rows",
    "service_instances",
]

SHOWN = 100  # rows per list on a page


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
    expired: int = 0
    # (priority, its queue key, jobs waiting) for priorities 1-9 in use, highest first
    priorities: list[tuple[int, str, int]] = field(default_factory=list)


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
    age: float | None = None


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
    queue = ReliableQueue(client)
    rows = []
    for name in names:
        info = await queue.info(name)
        keys = job_keys(name)
        stats = _texts(await client.hgetall(keys.stats))
        scheduled = await client.zcard(keys.scheduled)
        rows.append(
            QueueRow(
                name,
                info.waiting,
                info.inflight,
                info.delayed,
                info.dead,
                scheduled,
                int(stats.get("complete", 0)),
                int(stats.get("failed", 0)),
                info.dropped,
                info.records_dropped,
                info.dead_max,
                info.dead_age / 86400,
                int(stats.get("expired", 0)),
                [
                    (p, priority_key(name, p), n)
                    for p, n in (await priority_counts(client, name)).items()
                    if p
                ],
            )
        )
    return rows


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
        )
    args = show_bytes(JobDocument(doc.task, doc.args, doc.kwargs).encode())
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
    )


async def messages(client: AsyncClient, name: str, pending: bool) -> list[tuple[str, JobRow]]:
    """Waiting (or in-flight) messages of a queue: (queue message id, row)."""
    found = await ReliableQueue(client).inspect(name, pending=pending, start=0, count=SHOWN)
    state = JobState.RUNNING if pending else JobState.WAITING
    return [(m.id, _row(m, state.value)) for m in found]


async def dead_letters(client: AsyncClient, name: str) -> list[tuple[str, JobRow]]:
    found = await ReliableQueue(client).dead(name, start=0, count=SHOWN)
    return [(m.id, _row(m, JobState.DEAD.value)) for m in found]


async def _records(client: AsyncClient, name: str) -> list[JobRecord]:
    ids = [text(i, "replace") for i in await client.lrange(job_keys(name).recent, 0, SHOWN * 5)]
    return [r for r in await read_records(client, name, ids) if r is not None]


async def _scheduled(client: AsyncClient, name: str) -> list[JobRow]:
    rows = []
    found: list[tuple[bytes, float]] = await client.zrange(  # type: ignore[assignment]
        job_keys(name).scheduled, 0, SHOWN, withscores=True
    )
    for payload, due in found:
        doc = JobDocument.decode(payload)
        args = show_bytes(JobDocument(doc.task, doc.args, doc.kwargs).encode())
        rows.append(JobRow(doc.id, "scheduled", doc.task, args, age=time.time() - due))
    return rows


async def jobs_in_state(client: AsyncClient, name: str, state: JobState) -> list[JobRow]:
    """The jobs of queue `name` in `state` (at most a page)."""
    if state in (JobState.WAITING, JobState.RUNNING):
        return [row for _, row in await messages(client, name, state is JobState.RUNNING)]
    if state is JobState.DEAD:
        return [row for _, row in await dead_letters(client, name)]
    if state is JobState.SCHEDULED:
        return await _scheduled(client, name)
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
