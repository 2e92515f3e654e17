"""A workflow's state in Redis: its keys (all in the one cluster slot ``{wf:<id>}``), the
states of a workflow and of its members, and how a graph is written down when enqueued.

- ``{wf:<id>}:meta`` (hash): id, kind, state, total; settled, done, failed, skipped, cancelled
  counts; repeats (outcomes not counted: a member run again after it was counted); created,
  finished, ttl, shape, outputs, error_member
- ``{wf:<id>}:spec`` (hash): member (not a first one) -> its job document template (JSON:
  task, queue, priority, args, kwargs, input)
- ``{wf:<id>}:links`` (hash): member -> JSON {deps, next, mode, queue}
- ``{wf:<id>}:state`` (hash): member -> waiting, dispatched, done, failed, skipped, cancelled
- ``{wf:<id>}:pending`` (hash): member -> how many of its dependencies are not done
- ``{wf:<id>}:members`` (list): member names in member order (not ``on_error``)
- ``{wf:<id>}:results`` (hash): member -> its result (JSON)
- ``{wf:<id>}:errors`` (hash): member -> the error it failed with
- ``{wf:<id>}:times`` (hash): ``<member>:d`` dispatched, ``<member>:f`` finished (unix
  seconds), ``<member>:t`` the fencing token of the run that counted
- ``{<queue>}:job-wf:<id>`` (set, in the queue's slot): the workflow's job ids pushed onto
  that queue (dispatch markers)
- ``redline:workflows`` (sorted set): workflow id -> when it was enqueued, the newest
  `RECENT_MAX` (what the dashboard lists)

Every ``{wf:<id>}`` key expires `result_ttl` seconds after the workflow ends; the markers
expire `MARK_TTL` seconds after the last push onto their queue.
"""

from __future__ import annotations

import json
import time
import uuid
from enum import StrEnum
from typing import Any

from redline.jobs.document import JobDocument, decode_value, encode_value
from redline.jobs.workflow.graph import ON_ERROR, Graph, Input, Member
from redline.keys import derived

__all__ = [
    "MARK_TTL",
    "RECENT_KEY",
    "MemberState",
    "WorkflowKeys",
    "WorkflowState",
    "create_args",
    "job_id",
    "marker_key",
    "member_document",
]

MARK_TTL = 86_400  # seconds a dispatch marker is kept after the last push of its workflow
RECENT_KEY = "redline:workflows"  # the newest workflows by when they were enqueued
RECENT_MAX = 1000


class WorkflowState(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"  # a member failed (what does not depend on it still runs to the end)
    CANCELLED = "cancelled"


class MemberState(StrEnum):
    WAITING = "waiting"  # for what it depends on (or for its dispatch to be confirmed)
    DISPATCHED = "dispatched"  # its job is on its queue (waiting, running or retrying)
    DONE = "done"
    FAILED = "failed"  # after its retries
    SKIPPED = "skipped"  # something it depends on failed: it never runs
    CANCELLED = "cancelled"


_PARTS = ("meta", "spec", "links", "state", "pending", "members", "results", "errors", "times")


class WorkflowKeys:
    """The keys of workflow `id` (see the module docstring)."""

    def __init__(self, workflow_id: str) -> None:
        self.id = workflow_id
        names = [derived(f"wf:{workflow_id}", part) for part in _PARTS]
        self.meta, self.spec, self.links, self.state, self.pending = names[:5]
        self.members, self.results, self.errors, self.times = names[5:]
        self.all = names  # every key, in the order the settle and cancel scripts take them

    @property
    def create(self) -> list[str]:
        """The KEYS of `workflow_create`."""
        return self.all[:6]


def new_workflow_id() -> str:
    return uuid.uuid4().hex


def job_id(workflow_id: str, member: str) -> str:
    """The id of a member's job: fixed when the workflow is enqueued."""
    return f"{workflow_id}.{member}"


def marker_key(queue: str, workflow_id: str) -> str:
    """The set of the workflow's job ids pushed onto `queue` (in the queue's slot)."""
    return derived(queue, "job-wf", workflow_id)


_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _spec_of(m: Member) -> dict[str, Any]:
    t = m.signature.task
    return {
        "task": t.name,
        "queue": t.queue,
        "priority": t.priority,
        "args": list(m.signature.args),
        "kwargs": dict(m.signature.kwargs),
        "input": m.input.value,
    }


def _spec(m: Member) -> str:
    """A member's job template, kept for its dispatch ("" for a first member: the enqueue
    pushes it, nothing dispatches it later)."""
    if not m.deps and m.name != ON_ERROR:
        return ""
    what = f"workflow member {m.name!r} ({m.signature.task.name}): its arguments"
    return encode_value(_spec_of(m), what)


def _links(m: Member, dependants: list[str]) -> str:
    link = {"deps": list(m.deps), "next": dependants, "mode": m.input.value}
    return _compact({**link, "queue": m.signature.task.queue})


def _meta(graph: Graph, workflow_id: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "kind": graph.kind,
        "state": WorkflowState.RUNNING.value,
        "total": len(graph.members),
        "settled": 0,
        "created": repr(time.time()),
        "ttl": graph.result_ttl,
        "shape": graph.shape.value,
        "outputs": json.dumps(graph.outputs),
    }


def _all_members(graph: Graph) -> list[Member]:
    if graph.on_error is None:
        return list(graph.members)
    given = Input.NONE if graph.on_error.immutable else Input.ONE
    return [*graph.members, Member(ON_ERROR, graph.on_error, (), given)]


def note_recent(pipe: Any, workflow_id: str) -> None:
    """Queue in `pipe` the commands that list the workflow among the newest."""
    pipe.zadd(RECENT_KEY, {workflow_id: time.time()})
    pipe.zremrangebyrank(RECENT_KEY, 0, -RECENT_MAX - 1)


def create_args(graph: Graph, workflow_id: str) -> list[Any]:
    """The ARGV of `workflow_create` for `graph`."""
    meta = _meta(graph, workflow_id)
    args: list[Any] = [len(meta)]
    for pair in meta.items():
        args += pair
    dependants = graph.dependants()
    for m in _all_members(graph):
        args += [m.name, _spec(m), _links(m, dependants.get(m.name, [])), len(m.deps)]
    return args


def roots(graph: Graph) -> list[tuple[str, dict[str, Any], str]]:
    """The members that depend on nothing, as the settle script offers ready members."""
    return [(m.name, _spec_of(m), "") for m in graph.members if not m.deps]


def member_document(workflow_id: str, member: str, spec: dict[str, Any], given: str) -> bytes:
    """The job document of a member: its template, plus what it receives (JSON `given`, as
    the settle script built it) as first argument unless its input is ``none``."""
    args = list(spec["args"])
    if spec.get("input", "none") != Input.NONE.value:
        args.insert(0, decode_value(given or "null", f"workflow {workflow_id} input of {member}"))
    doc = JobDocument(
        task=spec["task"],
        args=tuple(args),
        kwargs=spec["kwargs"],
        queue=spec["queue"],
        id=job_id(workflow_id, member),
        workflow={"id": workflow_id, "member": member},
    )
    return doc.encode()
