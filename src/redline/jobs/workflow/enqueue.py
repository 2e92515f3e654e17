"""Enqueueing a workflow: its state written in one script call, its first members pushed in
one call per queue and 1,000 jobs (concurrently), their dispatch confirmed in one more.

A group of 10,000 members is so about three round trips' time (the listing among the newest
workflows, `RECENT_KEY`, goes beside the pushes). A producer killed between the first
call and the last leaves a workflow whose first members are partly pushed (`status()` shows
them `waiting` with nothing left to wait for); no member is ever pushed twice.
"""

from __future__ import annotations

import asyncio
import logging

from redline.connection import AsyncClient, SyncClient
from redline.jobs.workflow.graph import Graph
from redline.jobs.workflow.handle import SyncWorkflowHandle, WorkflowHandle
from redline.jobs.workflow.progress import dispatch, dispatch_sync
from redline.jobs.workflow.state import (
    WorkflowKeys,
    create_args,
    new_workflow_id,
    note_recent,
    roots,
)
from redline.scripting.scripts import run, run_sync

__all__ = ["enqueue_graph", "enqueue_graph_sync"]

log = logging.getLogger(__name__)


async def enqueue_graph(client: AsyncClient, graph: Graph) -> WorkflowHandle:
    """Write `graph`'s state and push its first members (`redline.jobs.enqueue` calls it)."""
    workflow_id = new_workflow_id()
    keys = WorkflowKeys(workflow_id)
    await run(client, "workflow_create", keys.create, create_args(graph, workflow_id))
    pipe = client.pipeline(transaction=False)
    note_recent(pipe, workflow_id)
    await asyncio.gather(dispatch(client, workflow_id, roots(graph)), pipe.execute())
    log.debug(
        "workflow enqueued id=%s kind=%s members=%d", workflow_id, graph.kind, len(graph.members)
    )
    return WorkflowHandle(workflow_id, client)


def enqueue_graph_sync(client: SyncClient, graph: Graph) -> SyncWorkflowHandle:
    """Blocking twin of `enqueue_graph`."""
    workflow_id = new_workflow_id()
    keys = WorkflowKeys(workflow_id)
    run_sync(client, "workflow_create", keys.create, create_args(graph, workflow_id))
    pipe = client.pipeline(transaction=False)
    note_recent(pipe, workflow_id)
    pipe.execute()
    dispatch_sync(client, workflow_id, roots(graph))
    return SyncWorkflowHandle(workflow_id, client)
