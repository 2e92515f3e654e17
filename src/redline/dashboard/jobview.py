"""A job's page: where the job is now, its arguments, its record (result, or the last error
and traceback), and the retry of a dead job (``POST /job/<id>/retry?queue=``)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from redline.connection import AsyncClient
from redline.dashboard import data
from redline.dashboard.audit import audit
from redline.dashboard.security import check_csrf
from redline.jobs.job import JobRecord, read_records
from redline.queue import ReliableQueue

__all__ = ["JobPlace", "find_job", "job_retry", "job_url", "queue_of"]


@dataclass(frozen=True)
class JobPlace:
    """Where a job is: the list holding its message (`data.LISTS`) and its row there, and the
    record the worker kept (None when it keeps none, or has not finished)."""

    kind: str | None
    row: data.JobRow | None
    record: JobRecord | None


def job_url(name: str, job_id: str) -> str:
    quoted = urllib.parse.quote(job_id, safe="")
    return f"/job/{quoted}?queue={urllib.parse.quote(name, safe='')}"


def queue_of(request: Request) -> str:
    """The ``queue`` query parameter of a job's URL (a job id is known within its queue)."""
    name = request.query_params.get("queue")
    if not name:
        raise HTTPException(400, "which queue? add ?queue=NAME to the job's URL")
    return name


async def find_job(client: AsyncClient, name: str, job_id: str) -> JobPlace:
    """Look for job `job_id` in each of queue `name`'s lists (the first `data.SEARCHED` of
    each), and read its record."""
    [record] = await read_records(client, name, [job_id])
    for kind in data.LISTS:
        shown = await data.listing(client, name, kind, query=job_id)
        for _, row in shown.rows:
            if row.id == job_id:
                return JobPlace(kind, row, record)
    return JobPlace(None, None, record)


async def job_retry(request: Request) -> Response:
    """Give a dead job another run: requeue its dead letter."""
    await check_csrf(request)
    name, job_id = queue_of(request), request.path_params["id"]
    client: AsyncClient = request.app.state.redis
    place = await find_job(client, name, job_id)
    if place.kind != "dead" or place.row is None:
        raise HTTPException(409, f"job {job_id} is not among the dead letters of {name}")
    done = await ReliableQueue(client).requeue(name, place.row.qid)
    await audit(request, "retry job", queue=name, job=job_id, done=done)
    return RedirectResponse(job_url(name, job_id), 303)
