"""Workflows: chains, groups, chords and dependency graphs of jobs, with exactly-once
progression under crashes. See docs/workflows.md.

    from redline.jobs import chain, chord, enqueue, group, workflow

    h = await enqueue(client, chord(group(score.s(d) for d in docs), summarize.s()))
    summary = await h.result(timeout=60)
"""

from __future__ import annotations

from redline.jobs.workflow.canvas import (
    Canvas,
    Chain,
    Chord,
    Group,
    Workflow,
    chain,
    chord,
    group,
    workflow,
)
from redline.jobs.workflow.graph import Graph, Input, Member, Shape
from redline.jobs.workflow.handle import (
    MemberStatus,
    SyncWorkflowHandle,
    WorkflowHandle,
    WorkflowStatus,
)
from redline.jobs.workflow.progress import MAX_RESULT, ResultTooLarge
from redline.jobs.workflow.state import MemberState, WorkflowKeys, WorkflowState

__all__ = [
    "MAX_RESULT",
    "Canvas",
    "Chain",
    "Chord",
    "Graph",
    "Group",
    "Input",
    "Member",
    "MemberState",
    "MemberStatus",
    "ResultTooLarge",
    "Shape",
    "SyncWorkflowHandle",
    "Workflow",
    "WorkflowHandle",
    "WorkflowKeys",
    "WorkflowState",
    "WorkflowStatus",
    "chain",
    "chord",
    "group",
    "workflow",
]
