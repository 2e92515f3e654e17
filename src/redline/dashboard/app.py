"""The dashboard's ASGI app: `create_app(config)` builds it; its state lives on `app.state`.

Pages are rendered on the server (Jinja2); the one script (`static/chart.js`, ours) draws the
queue chart from ``/api/queues``, which a background sampler fills every `sampleEvery` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from redline.connection import AsyncClient, connect
from redline.dashboard import control, data
from redline.dashboard.security import SecurityMiddleware, check_csrf, csrf_token
from redline.dashboard.settings import DashboardConfig
from redline.jobs.document import JobState
from redline.queue import ReliableQueue

__all__ = ["create_app"]

_env = Environment(loader=PackageLoader("redline.dashboard"), autoescape=select_autoescape())
_env.filters["q"] = lambda name: urllib.parse.quote(str(name), safe="")


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.redis
    return client


def _config(request: Request) -> DashboardConfig:
    config: DashboardConfig = request.app.state.config
    return config


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    page = _env.get_template(template).render(request=request, csrf=csrf_token(request), **context)
    return HTMLResponse(page)


async def _names(request: Request) -> list[str]:
    return await data.list_queues(_client(request), _config(request).queues)


async def overview(request: Request) -> Response:
    rows = await data.queue_rows(_client(request), await _names(request))
    return render(request, "overview.html", queues=rows)


async def api_queues(request: Request) -> Response:
    history = list(request.app.state.history)
    return JSONResponse({"every": _config(request).sample_every, "samples": history})


def _queue_name(request: Request) -> str:
    return urllib.parse.unquote(request.path_params["name"])


async def queue_page(request: Request) -> Response:
    name, client = _queue_name(request), _client(request)
    return render(
        request,
        "queue.html",
        name=name,
        info=(await data.queue_rows(client, [name]))[0],
        waiting=await data.messages(client, name, pending=False),
        inflight=await data.messages(client, name, pending=True),
        dead=await data.dead_letters(client, name),
        paused=await control.paused(client, name),
    )


async def dead_action(request: Request) -> Response:
    """POST retry / delete of dead letters (the ids checked in the form, or all shown)."""
    form = await check_csrf(request)
    name, action = _queue_name(request), request.path_params["action"]
    ids = form.get("id") or [i for i, _ in await data.dead_letters(_client(request), name)]
    queue = ReliableQueue(_client(request))
    if action == "retry":
        await queue.requeue(name, *ids)
    elif action == "delete":
        await queue.delete(name, *ids)
    else:
        raise HTTPException(404, f"no action {action!r}: use retry or delete")
    return RedirectResponse(f"/queues/{urllib.parse.quote(name, safe='')}", 303)


async def job_page(request: Request) -> Response:
    """One job: its status, progress and events (`?queue=NAME`)."""
    name, job_id = control.job_queue(request), request.path_params["id"]
    return render(request, "job.html", **await control.job_view(_client(request), name, job_id))


async def jobs_page(request: Request) -> Response:
    names = await _names(request)
    name = request.query_params.get("queue") or (names[0] if names else "")
    try:
        state = JobState(request.query_params.get("state", "waiting"))
    except ValueError:
        states = [s.value for s in JobState]
        raise HTTPException(400, f"unknown state: use one of {states}") from None
    rows = await data.jobs_in_state(_client(request), name, state) if name else []
    return render(
        request,
        "jobs.html",
        names=names,
        name=name,
        state=state.value,
        states=[s.value for s in JobState],
        rows=rows,
    )


async def services_page(request: Request) -> Response:
    client = _client(request)
    found = await data.service_instances(client, _config(request).namespaces)
    rollouts = await data.rollout_rows(client, list(dict.fromkeys(i.namespace for i in found)))
    return render(request, "services.html", instances=found, rollouts=rollouts, now=time.time())


async def metrics_page(request: Request) -> Response:
    rows = await data.metrics_hashes(_client(request), _config(request).namespaces)
    return render(request, "metrics.html", rows=rows)


async def _sample(app: Starlette, stopping: asyncio.Event) -> None:
    config: DashboardConfig = app.state.config
    while not stopping.is_set():
        with contextlib.suppress(Exception):  # a missed sample is a gap in the chart, no more
            rows = await data.queue_rows(
                app.state.redis, await data.list_queues(app.state.redis, config.queues)
            )
            app.state.history.append({"t": time.time(), "queues": [r.__dict__ for r in rows]})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), config.sample_every)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    sampler = asyncio.create_task(_sample(app, stopping))
    try:
        yield
    finally:
        # The flag, not only the cancel: a cancel that lands inside a Redis call can be turned
        # into a connection error by the client and swallowed above, which hung the stop.
        stopping.set()
        sampler.cancel()
        await asyncio.wait({sampler}, timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.state.redis.aclose(), 5)


def create_app(config: DashboardConfig, client: AsyncClient | None = None) -> Starlette:
    """The dashboard app for `config` (its `redis` URL, or the given `client`)."""
    if client is None and config.redis is None:
        raise ValueError("create_app needs config.redis or a client")
    static = StaticFiles(directory=str(resources.files("redline.dashboard") / "static"))
    routes = [
        Route("/", overview),
        Route("/api/queues", api_queues),
        Route("/queues/{name:path}/dead/{action}", dead_action, methods=["POST"]),
        Route("/queues/{name:path}/control/{action}", control.queue_action, methods=["POST"]),
        Route("/job/{id}/cancel", control.job_action, methods=["POST"]),
        Route("/job/{id}", job_page),
        Route("/queues/{name:path}", queue_page),
        Route("/jobs", jobs_page),
        Route("/services", services_page),
        Route("/metrics", metrics_page),
        Mount("/static", static, name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, config=config)],
        lifespan=_lifespan,
    )
    app.state.config = config
    app.state.redis = client if client is not None else connect(config.redis or "")
    app.state.history = deque(maxlen=config.history)
    return app
