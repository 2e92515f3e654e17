"""A handle on an enqueued workflow: its status, its result, cancelling it.

    h = await enqueue(client, group(resize.s(i) for i in images))
    (await h.status()).state          # WorkflowState.RUNNING, .COMPLETE, .FAILED, .CANCELLED
    sizes = await h.results(timeout=60)   # every member's result, in member order
    await h.cancel()

`SyncWorkflowHandle` (from `enqueue_sync`) has the same methods on a blocking client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.connection import AsyncClient, SyncClient
from redline.errors import JobTimeout, WorkflowError, WorkflowFailed
from redline.jobs.control import cancel_job, cancel_job_sync
from redline.jobs.document import decode_value
from redline.jobs.workflow.graph import ON_ERROR
from redline.jobs.workflow.state import MemberState, WorkflowKeys, WorkflowState, job_id
from redline.scripting.scripts import run, run_sync

__all__ = ["MemberStatus", "SyncWorkflowHandle", "WorkflowHandle", "WorkflowStatus"]

CANCEL_AT_ONCE = 500  # job cancels in flight at once when a workflow is cancelled


@dataclass(frozen=True)
class MemberStatus:
    """One member: its state in the workflow, its job, when it was pushed and finished."""

    name: str
    state: MemberState
    job_id: str
    queue: str
    depends_on: tuple[str, ...] = ()
    dispatched_at: float | None = None
    finished_at: float | None = None
    error: str = ""


@dataclass(frozen=True)
class WorkflowStatus:
    id: str
    kind: str
    state: WorkflowState
    created: float
    finished: float | None
    members: list[MemberStatus]
    on_error: MemberStatus | None = None
    error_member: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)


def _str(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}


def _when(times: Mapping[str, str], name: str, mark: str) -> float | None:
    value = times.get(f"{name}:{mark}")
    return float(value) if value else None


def _member(workflow_id: str, name: str, found: Sequence[dict[str, str]]) -> MemberStatus:
    state, times, errors, links = found
    link = json.loads(links.get(name, "{}"))
    return MemberStatus(
        name,
        MemberState(state.get(name, "waiting")),
        job_id(workflow_id, name),
        link.get("queue", ""),
        tuple(link.get("deps", ())),
        _when(times, name, "d"),
        _when(times, name, "f"),
        errors.get(name, ""),
    )


def _queue_status(pipe: Any, keys: WorkflowKeys) -> None:
    pipe.hgetall(keys.meta)
    pipe.lrange(keys.members, 0, -1)
    for key in (keys.state, keys.times, keys.errors, keys.links):
        pipe.hgetall(key)


def _status(workflow_id: str, replies: Sequence[Any]) -> WorkflowStatus | None:
    meta = _text(replies[0])
    if not meta:
        return None
    found = [_text(r) for r in replies[2:]]
    names = [_str(n) for n in replies[1]]
    names_of_counts = ("total", "done", "failed", "skipped", "cancelled", "repeats")
    counts = {k: int(meta.get(k, 0)) for k in names_of_counts}
    return WorkflowStatus(
        workflow_id,
        meta.get("kind", ""),
        WorkflowState(meta["state"]),
        float(meta.get("created", 0)),
        float(meta["finished"]) if meta.get("finished") else None,
        [_member(workflow_id, n, found) for n in names],
        _member(workflow_id, ON_ERROR, found) if ON_ERROR in found[0] else None,
        meta.get("error_member", ""),
        counts,
    )


def _unknown(workflow_id: str) -> WorkflowError:
    return WorkflowError(
        f"no workflow {workflow_id!r}: never enqueued, or its state expired result_ttl "
        "seconds after it ended"
    )


def _ended(workflow_id: str, meta: Mapping[str, str], errors: Mapping[str, str]) -> None:
    """Raise WorkflowFailed when the ended workflow did not complete."""
    state = meta["state"]
    if state != WorkflowState.COMPLETE:
        member = meta.get("error_member", "")
        raise WorkflowFailed(workflow_id, state, member, errors.get(member, ""))


def _value(raw: bytes | str | None, what: str) -> Any:
    return None if raw is None else decode_value(raw, what)


def _output(workflow_id: str, meta: Mapping[str, str], values: Sequence[bytes | str | None]) -> Any:
    outputs = json.loads(meta["outputs"])
    decoded = [_value(v, f"workflow {workflow_id} result") for v in values]
    if meta.get("shape") == "one":
        return decoded[0]
    if meta.get("shape") == "dict":
        return dict(zip(outputs, decoded, strict=True))
    return decoded


class _Base:
    def __init__(self, workflow_id: str) -> None:
        self.id = workflow_id
        self.keys = WorkflowKeys(workflow_id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    def _check(self, meta: dict[str, str], deadline: float | None, timeout: float | None) -> bool:
        """True once the workflow has ended; raises when it is unknown or the time is up."""
        if not meta:
            raise _unknown(self.id)
        if meta.get("finished"):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            raise JobTimeout(f"workflow {self.id} has not ended after {timeout}s")
        return False


class WorkflowHandle(_Base):
    """An enqueued workflow, read and cancelled through an asyncio client."""

    def __init__(self, workflow_id: str, client: AsyncClient) -> None:
        super().__init__(workflow_id)
        self.client = client

    async def status(self) -> WorkflowStatus:
        """The workflow's state and each member's; WorkflowError when it is unknown."""
        pipe = self.client.pipeline(transaction=False)
        _queue_status(pipe, self.keys)
        found = _status(self.id, await pipe.execute())
        if found is None:
            raise _unknown(self.id)
        return found

    async def _wait(self, timeout: float | None) -> dict[str, str]:  # noqa: ASYNC109
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while not self._check(
            meta := _text(await self.client.hgetall(self.keys.meta)), deadline, timeout
        ):
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
        _ended(self.id, meta, _text(await self.client.hgetall(self.keys.errors)))
        return meta

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Wait for the end; the last member's result (a list of them for a group, a dict by
        name for a workflow with several last members). WorkflowFailed when it failed or was
        cancelled; JobTimeout after `timeout` seconds."""
        meta = await self._wait(timeout)
        values = await self.client.hmget(self.keys.results, json.loads(meta["outputs"]))
        return _output(self.id, meta, values)

    async def results(self, timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109
        """Wait for the end; every member's result in member order (a group's results)."""
        await self._wait(timeout)
        names = await self.client.lrange(self.keys.members, 0, -1)
        values = await self.client.hmget(self.keys.results, names) if names else []
        return [_value(v, f"workflow {self.id} result") for v in values]

    async def cancel(self) -> bool:
        """Cancel every member not finished (waiting ones never run, running ones are
        cancelled where they run); False when the workflow had already ended."""
        reply = await run(self.client, "workflow_cancel", self.keys.all, [repr(time.time())])
        jobs = _to_cancel(self.id, reply)
        for i in range(0, len(jobs), CANCEL_AT_ONCE):
            chunk = jobs[i : i + CANCEL_AT_ONCE]
            await asyncio.gather(*(cancel_job(self.client, q, j) for q, j in chunk))
        return _cancel_result(self.id, reply)


class SyncWorkflowHandle(_Base):
    """`WorkflowHandle` on a blocking client."""

    def __init__(self, workflow_id: str, client: SyncClient) -> None:
        super().__init__(workflow_id)
        self.client = client

    def status(self) -> WorkflowStatus:
        pipe = self.client.pipeline(transaction=False)
        _queue_status(pipe, self.keys)
        found = _status(self.id, pipe.execute())
        if found is None:
            raise _unknown(self.id)
        return found

    def _wait(self, timeout: float | None) -> dict[str, str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while not self._check(
            meta := _text(self.client.hgetall(self.keys.meta)), deadline, timeout
        ):
            time.sleep(pause)
            pause = min(pause * 2, 0.25)
        _ended(self.id, meta, _text(self.client.hgetall(self.keys.errors)))
        return meta

    def result(self, timeout: float | None = None) -> Any:
        meta = self._wait(timeout)
        values = self.client.hmget(self.keys.results, json.loads(meta["outputs"]))
        return _output(self.id, meta, values)

    def results(self, timeout: float | None = None) -> list[Any]:
        self._wait(timeout)
        names = self.client.lrange(self.keys.members, 0, -1)
        values = self.client.hmget(self.keys.results, names) if names else []
        return [_value(v, f"workflow {self.id} result") for v in values]

    def cancel(self) -> bool:
        reply = run_sync(self.client, "workflow_cancel", self.keys.all, [repr(time.time())])
        for queue, job in _to_cancel(self.id, reply):
            cancel_job_sync(self.client, queue, job)
        return _cancel_result(self.id, reply)


def _to_cancel(workflow_id: str, reply: Sequence[Any]) -> list[tuple[str, str]]:
    """(queue, job id) of the members whose jobs were pushed before the cancel."""
    pairs = reply[1:]
    return [
        (json.loads(pairs[i + 1])["queue"], job_id(workflow_id, pairs[i].decode()))
        for i in range(0, len(pairs), 2)
    ]


def _cancel_result(workflow_id: str, reply: Sequence[Any]) -> bool:
    verdict = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    if verdict == "unknown":
        raise _unknown(workflow_id)
    return verdict == "cancelled"
