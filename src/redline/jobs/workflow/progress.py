"""How a workflow moves on: a worker reports its members' outcomes, then pushes what became
ready, before it acknowledges the members' jobs.

The steps, for the outcomes of one settling (`settle_members`, called by the worker first):

1. ``workflow_settle`` (one call per workflow, in its slot): outcomes recorded, counted once
   per member (by job id; the delivery count is kept as the fencing token); dependants whose
   dependencies are all done come back, with the results they receive.
2. ``workflow_dispatch`` (per queue, in the queue's slot): their jobs are pushed, each at most
   once (a marker set of the workflow's job ids beside the queue).
3. ``workflow_confirm`` (the workflow's slot): they are marked dispatched.
4. Only then does the worker acknowledge the members' jobs.

A SIGKILL before 4 gets the member's job redelivered and run again; its outcome is then a
repeat, counted nothing, and step 1 offers again whatever is not confirmed dispatched, which
step 2 pushes only if the first attempt did not. So a dependant is enqueued exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from redline.connection import AsyncClient, SyncClient
from redline.errors import TRANSIENT, JobSerializationError
from redline.jobs.control import cancel_job, cancel_job_sync
from redline.jobs.document import JobDocument, encode_value
from redline.jobs.priority import levels_key, priority_key
from redline.jobs.workflow.state import (
    MARK_TTL,
    WorkflowKeys,
    job_id,
    marker_key,
    member_document,
)
from redline.queue import Delivery
from redline.queue.core import BATCH
from redline.scripting.scripts import run, run_sync

__all__ = ["MAX_RESULT", "Ready", "dispatch", "dispatch_sync", "kept_result", "settle_members"]

log = logging.getLogger(__name__)

MAX_RESULT = 512 * 1024  # bytes of a member's result (JSON): a larger one fails the member

Ready = tuple[str, dict[str, Any], str]  # member, its job document template, its input (JSON)
Call = tuple[list[str], list[Any]]


class Outcome(Protocol):
    """What `settle_members` reads of the worker's outcomes (`jobs.worker.JobOutcome`)."""

    @property
    def delivery(self) -> Delivery: ...
    @property
    def doc(self) -> JobDocument | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def dead(self) -> bool: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def returned(self) -> bool: ...
    @property
    def value(self) -> Any: ...
    @property
    def error(self) -> str: ...


class ResultTooLarge(JobSerializationError):
    """A workflow member returned more than `MAX_RESULT` bytes of JSON."""


def kept_result(doc: JobDocument, value: Any) -> str | None:
    """The JSON of a run's result when it is kept: the task keeps results, or the job is a
    workflow member (its dependants receive it). A member's is refused above `MAX_RESULT`."""
    if not (doc.result_ttl or doc.workflow):
        return None
    text = encode_value(value, f"job {doc.id} result")
    if doc.workflow and len(text.encode()) > MAX_RESULT:
        raise ResultTooLarge(
            f"job {doc.id} (workflow member {doc.workflow['member']!r}) returned "
            f"{len(text.encode())} bytes of JSON, more than the {MAX_RESULT} a workflow keeps: "
            "store large data elsewhere (a file, a key) and return where it is"
        )
    return text


def _reports(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    """The ARGV tail of `workflow_settle` per workflow: member, token, ok/fail, payload."""
    found: dict[str, list[Any]] = {}
    for o in outcomes:
        if o.doc is None or o.doc.workflow is None or o.returned:
            continue
        if o.ok:
            kind, payload = "ok", o.value if o.value is not None else "null"
        elif o.dead or o.cancelled:
            kind, payload = "fail", o.error or "cancelled"
        else:
            continue  # it will be retried
        report = [o.doc.workflow["member"], o.delivery.deliveries, kind, payload]
        found.setdefault(o.doc.workflow["id"], []).extend(report)
    return found


async def settle_members(client: AsyncClient, outcomes: Sequence[Outcome]) -> None:
    """Report the outcomes of workflow members and push what they made ready (steps 1-3)."""
    reports = _reports(outcomes)
    if reports:
        await asyncio.gather(*(_advance(client, wf, args) for wf, args in reports.items()))


async def _advance(client: AsyncClient, workflow_id: str, reports: list[Any]) -> None:
    try:
        await _step(client, workflow_id, reports)
    except TRANSIENT:
        raise  # the members are not acked: redelivered, their outcomes settled again
    except Exception:  # a workflow's fault must not stop the worker settling other jobs
        log.exception("workflow could not move on id=%s (its members are acked)", workflow_id)


async def _step(client: AsyncClient, workflow_id: str, reports: list[Any]) -> None:
    keys = WorkflowKeys(workflow_id)
    reply = await run(client, "workflow_settle", keys.all, [repr(time.time()), *reports])
    ready = _ready(reply[1:])
    if ready:
        await dispatch(client, workflow_id, ready)
    if reply[0]:
        log.info("workflow finished id=%s", workflow_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ready(flat: Sequence[Any]) -> list[Ready]:
    return [
        (_text(flat[i]), json.loads(flat[i + 1]), _text(flat[i + 2]))
        for i in range(0, len(flat), 3)
    ]


def _dispatch_calls(workflow_id: str, ready: Sequence[Ready]) -> list[Call]:
    """`workflow_dispatch` calls for `ready`: one per queue and priority, per `BATCH`."""
    by_list: dict[tuple[str, int], list[Any]] = {}
    for member, spec, given in ready:
        doc = member_document(workflow_id, member, spec, given)
        args = by_list.setdefault((spec["queue"], int(spec.get("priority", 0))), [])
        args += [job_id(workflow_id, member), doc]
    calls = []
    for (queue, priority), pairs in by_list.items():
        keys = [priority_key(queue, priority), marker_key(queue, workflow_id), levels_key(queue)]
        for i in range(0, len(pairs), 2 * BATCH):
            calls.append((keys, [priority, MARK_TTL, *pairs[i : i + 2 * BATCH]]))
    return calls


def _confirm_call(workflow_id: str, ready: Sequence[Ready], pushed_at: float) -> Call:
    keys = WorkflowKeys(workflow_id)
    names = [member for member, _, _ in ready]
    return [keys.meta, keys.state, keys.times], [repr(pushed_at), *names]


def _cancelled(
    workflow_id: str, ready: Sequence[Ready], reply: Sequence[Any]
) -> list[tuple[str, str]]:
    """(queue, job id) of each member `workflow_confirm` found cancelled."""
    found = {_text(name) for name in reply}
    return [(spec["queue"], job_id(workflow_id, m)) for m, spec, _ in ready if m in found]


async def dispatch(client: AsyncClient, workflow_id: str, ready: Sequence[Ready]) -> None:
    """Push the jobs of `ready` members (each at most once) and confirm it (steps 2-3)."""
    calls, pushed_at = _dispatch_calls(workflow_id, ready), time.time()
    await asyncio.gather(*(run(client, "workflow_dispatch", k, a) for k, a in calls))
    keys, args = _confirm_call(workflow_id, ready, pushed_at)
    reply = await run(client, "workflow_confirm", keys, args)
    for queue, job in _cancelled(workflow_id, ready, reply):  # pushed after a cancel
        await cancel_job(client, queue, job)


def dispatch_sync(client: SyncClient, workflow_id: str, ready: Sequence[Ready]) -> None:
    """Blocking twin of `dispatch`."""
    pushed_at = time.time()
    for keys, args in _dispatch_calls(workflow_id, ready):
        run_sync(client, "workflow_dispatch", keys, args)
    keys, args = _confirm_call(workflow_id, ready, pushed_at)
    for queue, job in _cancelled(
        workflow_id, ready, run_sync(client, "workflow_confirm", keys, args)
    ):
        cancel_job_sync(client, queue, job)
