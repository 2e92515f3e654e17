"""The dashboard's job controls: pause and resume a queue (POST, CSRF-checked like every
action), cancel a job, and a job's page with its status, progress and events."""

from __future__ import annotations

import urllib.parse
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from redline.connection import AsyncClient
from redline.dashboard.audit import audit
from redline.dashboard.security import check_csrf
from redline.jobs.control import cancel_job, is_paused, pause_queue, resume_queue
from redline.jobs.document import job_keys
from redline.jobs.events import EVENTS_MAXLEN, JobEvent
from redline.jobs.status import job_status

__all__ = ["job_action", "job_url", "job_view", "paused", "queue_action"]

SHOWN = 200  # events of one job a page shows at most (newest)
SCANNED = 2000  # newest events of the queue a job's page looks through (a bounded read: the
# page is re-read whenever its queue changes)


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.redis
    return client


def _name(request: Request) -> str:
    return urllib.parse.unquote(request.path_params["name"])


async def paused(client: AsyncClient, name: str) -> bool:
    return await is_paused(client, name)


async def queue_action(request: Request) -> Response:
    """POST /queues/{name}/control/pause|resume."""
    await check_csrf(request)
    name, action = _name(request), request.path_params["action"]
    if action == "pause":
        await pause_queue(_client(request), name)
    elif action == "resume":
        await resume_queue(_client(request), name)
    else:
        raise HTTPException(404, f"no action {action!r}: use pause or resume")
    await audit(request, action, queue=name)
    return RedirectResponse(f"/queues/{urllib.parse.quote(name, safe='')}", 303)


def job_queue(request: Request) -> str:
    """The ``queue`` query parameter of a job's URL (a job id is known within its queue)."""
    name = request.query_params.get("queue")
    if not name:
        raise HTTPException(400, "which queue? add ?queue=NAME to the job's URL")
    return name


async def job_action(request: Request) -> Response:
    """POST /job/{id}/cancel?queue=NAME."""
    await check_csrf(request)
    name, job_id = job_queue(request), request.path_params["id"]
    found = await cancel_job(_client(request), name, job_id)
    await audit(request, "cancel job", queue=name, job=job_id, found=found)
    return RedirectResponse(job_url(name, job_id), 303)


def job_url(name: str, job_id: str) -> str:
    return f"/job/{urllib.parse.quote(job_id, safe='')}?queue={urllib.parse.quote(name, safe='')}"


async def job_view(client: AsyncClient, name: str, job_id: str) -> dict[str, Any]:
    """What a job's page shows: its status (None when none is kept) and its events among the
    queue's newest `SCANNED` (at most `SHOWN`)."""
    newest: list[Any] = await client.xrevrange(  # type: ignore[assignment]
        job_keys(name).events, count=SCANNED
    )
    found = [e for i, fields in reversed(newest) for e in JobEvent.in_entry(name, i, fields)]
    return {
        "name": name,
        "job_id": job_id,
        "status": await job_status(client, name, job_id),
        "events": [e for e in found if e.job == job_id][-SHOWN:],
        "kept": min(SCANNED, EVENTS_MAXLEN),
    }
