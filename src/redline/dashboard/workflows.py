"""Workflows on the dashboard: the newest ones (listed on the jobs page), a workflow's page
(its members with state and timing, and a drawing of its graph), and the link from a member
job's page to its workflow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from redline.connection import AsyncClient, text
from redline.errors import WorkflowError
from redline.jobs.workflow import MemberStatus, WorkflowHandle, WorkflowKeys, WorkflowStatus
from redline.jobs.workflow.state import RECENT_KEY

__all__ = ["Drawing", "WorkflowRow", "drawing", "member_of", "page", "recent"]

LISTED = 20  # newest workflows on the jobs page
SHOWN = 500  # members a workflow's page lists
DRAWN = 150  # members a drawing shows at most (larger graphs are listed only)
BOX_W, BOX_H, GAP_X, GAP_Y = 132, 30, 56, 12


@dataclass(frozen=True)
class WorkflowRow:
    id: str
    kind: str
    state: str
    done: int
    total: int
    created: float


async def recent(client: AsyncClient, count: int = LISTED) -> list[WorkflowRow]:
    """The newest workflows still kept (their state not yet expired), newest first."""
    ids = [text(i) for i in await client.zrevrange(RECENT_KEY, 0, count - 1)]
    pipe = client.pipeline(transaction=False)
    for workflow_id in ids:
        pipe.hmget(WorkflowKeys(workflow_id).meta, "kind", "state", "done", "total", "created")
    rows = []
    for workflow_id, meta in zip(ids, await pipe.execute() if ids else [], strict=True):
        kind, state, done, total, created = (v.decode() if v else "" for v in meta)
        if state:
            rows.append(
                WorkflowRow(workflow_id, kind, state, int(done or 0), int(total), float(created))
            )
    return rows


async def member_of(client: AsyncClient, job_id: str) -> tuple[str, str] | None:
    """(workflow id, member) when `job_id` is a member's job (``<workflow id>.<member>``)
    of a workflow still kept."""
    workflow_id, dot, member = job_id.partition(".")
    if not dot or not await client.hexists(WorkflowKeys(workflow_id).state, member):
        return None
    return workflow_id, member


@dataclass(frozen=True)
class Box:
    name: str
    state: str
    x: int
    y: int


@dataclass(frozen=True)
class Drawing:
    """An SVG drawing of a graph: boxes (left to right by depth) and edges between them."""

    width: int
    height: int
    boxes: list[Box]
    edges: list[tuple[int, int, int, int]]


def _depths(members: Sequence[MemberStatus]) -> dict[str, int]:
    """Each member's column: 0 for a first member, else one more than its deepest dependency
    (members are in an order where a workflow(...) may list a member before its dependency)."""
    depth = {m.name: 0 for m in members}
    for _ in range(len(members)):
        changed = False
        for m in members:
            want = max((depth[d] + 1 for d in m.depends_on if d in depth), default=0)
            if want != depth[m.name]:
                depth[m.name], changed = want, True
        if not changed:
            break
    return depth


def drawing(members: Sequence[MemberStatus]) -> Drawing | None:
    """The drawing of a graph of at most `DRAWN` members (None for a larger one)."""
    if not members or len(members) > DRAWN:
        return None
    depth, rows = _depths(members), dict[int, int]()
    at: dict[str, tuple[int, int]] = {}
    boxes = []
    for m in members:
        column = depth[m.name]
        row = rows[column] = rows.get(column, -1) + 1
        x, y = 8 + column * (BOX_W + GAP_X), 8 + row * (BOX_H + GAP_Y)
        at[m.name] = (x, y)
        boxes.append(Box(m.name, m.state.value, x, y))
    edges = [
        (at[d][0] + BOX_W, at[d][1] + BOX_H // 2, at[m.name][0], at[m.name][1] + BOX_H // 2)
        for m in members
        for d in m.depends_on
        if d in at
    ]
    width = 16 + (max(depth.values()) + 1) * (BOX_W + GAP_X) - GAP_X
    height = 16 + (max(rows.values()) + 1) * (BOX_H + GAP_Y) - GAP_Y
    return Drawing(width, height, boxes, edges)


async def page(client: AsyncClient, workflow_id: str) -> dict[str, Any]:
    """What a workflow's page shows (`workflow.html`); HTTP 404 when it is not kept."""
    try:
        status: WorkflowStatus = await WorkflowHandle(workflow_id, client).status()
    except WorkflowError as error:
        raise HTTPException(404, str(error)) from None
    return {
        "wf": status,
        "members": status.members[:SHOWN],
        "shown": SHOWN,
        "drawing": drawing(status.members),
        "box": (BOX_W, BOX_H),
    }
