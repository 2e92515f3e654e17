"""The dashboard's actions on queues and services: each a POST, CSRF-checked, logged with who
did it (`redline.dashboard.audit`), answered by a redirect back to the page it came from.

- ``/queues/<name>/dead/retry|delete``: dead letters (the ids checked, or all shown)
- ``/queues/<name>/purge``: every waiting and delayed message (the form must say ``confirm=yes``)
- ``/queues/<name>/recover``: in-flight messages whose lease lapsed (their consumer is gone)
- ``/queues/<name>/release``: in-flight messages held by instances whose lifecycle record is gone
- ``/services/scale``: a namespace's desired replicas (``redline scale``)
"""

from __future__ import annotations

import urllib.parse

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from redline.connection import AsyncClient
from redline.dashboard import data
from redline.dashboard.audit import audit
from redline.dashboard.security import check_csrf
from redline.queue import ReliableQueue
from redline.runtime.desired import get_desired, set_desired
from redline.runtime.holders import release_gone

__all__ = ["dead_action", "purge", "recover", "release", "scale"]


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.redis
    return client


def _name(request: Request) -> str:
    return urllib.parse.unquote(request.path_params["name"])


def _back(name: str) -> Response:
    return RedirectResponse(f"/queues/{urllib.parse.quote(name, safe='')}", 303)


async def dead_action(request: Request) -> Response:
    """Retry or delete dead letters (the ids checked in the form, or all shown)."""
    form = await check_csrf(request)
    name, action = _name(request), request.path_params["action"]
    if action not in ("retry", "delete"):
        raise HTTPException(404, f"no action {action!r}: use retry or delete")
    ids = form.get("id") or [i for i, _ in (await data.dead_letters(_client(request), name)).rows]
    queue = ReliableQueue(_client(request))
    done = await (queue.requeue if action == "retry" else queue.delete)(name, *ids)
    await audit(request, f"dead letters {action}", queue=name, ids=len(ids), done=done)
    return _back(name)


async def purge(request: Request) -> Response:
    """Drop every waiting and delayed message of the queue (asks ``confirm=yes``)."""
    form = await check_csrf(request)
    name = _name(request)
    if form.get("confirm") != ["yes"]:
        raise HTTPException(400, "purge drops every waiting message: send confirm=yes to do it")
    dropped = await ReliableQueue(_client(request)).purge(name)
    await audit(request, "purge", queue=name, dropped=dropped)
    return _back(name)


async def recover(request: Request) -> Response:
    """Requeue the in-flight messages whose lease lapsed: their consumer stopped renewing it."""
    await check_csrf(request)
    name = _name(request)
    recovered = await ReliableQueue(_client(request)).recover(name, count=1000)
    await audit(request, "requeue lapsed in-flight", queue=name, requeued=recovered)
    return _back(name)


async def release(request: Request) -> Response:
    """Requeue, whatever their lease, the in-flight messages held by service instances that are
    gone (their lifecycle hash is): `redline queue holders KEY --release-gone`."""
    await check_csrf(request)
    name = _name(request)
    gone, moved = await release_gone(_client(request), name)
    await audit(
        request, "requeue held by gone consumers", queue=name, gone=",".join(gone), moved=moved
    )
    return _back(name)


async def scale(request: Request) -> Response:
    """Set a namespace's desired replicas, as ``redline scale NAMESPACE N`` does."""
    form = await check_csrf(request)
    namespace = (form.get("namespace") or [""])[0].strip()
    try:
        replicas = int((form.get("replicas") or [""])[0])
    except ValueError:
        raise HTTPException(400, "replicas must be a whole number, 0 or more") from None
    if not namespace or replicas < 0:
        raise HTTPException(400, "give a namespace and replicas of 0 or more")
    before = await get_desired(_client(request), namespace)
    await set_desired(_client(request), namespace, replicas)
    await audit(request, "scale", namespace=namespace, replicas=replicas, was=before)
    return RedirectResponse("/services", 303)
