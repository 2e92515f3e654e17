"""The dashboard's ASGI app: `create_app(config)` builds it; its state lives on `app.state`.

Pages are rendered on the server (Jinja2). One script of ours (`static/live.js`) keeps a page
live: it opens the page's one Server-Sent Events stream (``/live``, see `redline.dashboard.live`),
updates the counts and the chart from each sample, and re-reads the page's lists when a part
the page shows changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from redline.connection import AsyncClient, connect
from redline.dashboard import (
    actions,
    audit,
    busy,
    charts,
    control,
    data,
    jobview,
    services,
    workflows,
)
from redline.dashboard.audit import AUDIT
from redline.dashboard.live import Live, live_stream, sampler
from redline.dashboard.security import SecurityMiddleware, csrf_token
from redline.dashboard.settings import DashboardConfig
from redline.errors import TRANSIENT
from redline.jobs.document import JobState
from redline.jobs.usage import limit_use
from redline.runtime.holders import held_by

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

OVERVIEW_ACTIONS = 10  # the newest actions the overview lists
AUDIT_SHOWN = 100  # the audit page's default count

_env = Environment(loader=PackageLoader("redline.dashboard"), autoescape=select_autoescape())
_env.filters["q"] = lambda name: urllib.parse.quote(str(name), safe="")
_env.filters["clock"] = lambda t: time.strftime("%H:%M:%S", time.localtime(float(t)))
_env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(t)))
_env.globals |= {"histogram": charts.histogram, "PAGE": data.SHOWN, "SEARCHED": data.SEARCHED}


def _duration(seconds: float) -> str:
    """``42s``, ``7m``, ``3.5h``, ``2.1d``: an age as a person reads it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f}{unit}" if unit != "m" else f"{seconds / size:.0f}m"
    return f"{seconds:.0f}s"


_env.filters["duration"] = _duration


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.redis
    return client


def _config(request: Request) -> DashboardConfig:
    config: DashboardConfig = request.app.state.config
    return config


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    page = _env.get_template(template).render(
        request=request, csrf=csrf_token(request), rendered=time.time(), **context
    )
    return HTMLResponse(page)


async def _names(request: Request) -> list[str]:
    return await data.list_queues(_client(request), _config(request).queues)


async def overview(request: Request) -> Response:
    rows = await data.queue_rows(_client(request), await _names(request))
    recent = await audit.recent(_client(request), OVERVIEW_ACTIONS)
    events = list(request.app.state.live.events)
    return render(request, "overview.html", queues=rows, actions=recent, events=events, watch="*")


async def audit_page(request: Request) -> Response:
    """The newest actions (``?count=N``, at most the stream's cap), newest first."""
    count = min(_int_param(request, "count") or AUDIT_SHOWN, audit.AUDIT_KEPT)
    found = await audit.recent(_client(request), count)
    return render(
        request, "audit.html", actions=found, count=count, kept=audit.AUDIT_KEPT, watch="audit"
    )


async def api_queues(request: Request) -> Response:
    history = list(request.app.state.live.samples)
    return JSONResponse({"every": _config(request).sample_every, "samples": history})


def _queue_name(request: Request) -> str:
    return urllib.parse.unquote(request.path_params["name"])


def _int_param(request: Request, name: str) -> int:
    try:
        return max(0, int(request.query_params.get(name) or 0))
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number") from None


async def queue_page(request: Request) -> Response:
    name, client = _queue_name(request), _client(request)
    kind = request.query_params.get("list", "waiting")
    info = (await data.queue_rows(client, [name]))[0]
    total = {k: getattr(info, k) for k in data.LISTS}
    try:
        shown = await data.listing(
            client,
            name,
            kind,
            _int_param(request, "start"),
            request.query_params.get("q", ""),
            total.get(kind, 0),
        )
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    return render(
        request,
        "queue.html",
        name=name,
        info=info,
        shown=shown,
        totals=total,
        watch=f"queue:{name}",
        now=time.time(),
        paused=await control.paused(client, name),
        holders=await busy.holders(client) if kind == "inflight" else {},
        gone=await _gone(client, name) if kind == "inflight" else set(),
        limits=await limit_use(client, name),
    )


async def _gone(client: AsyncClient, name: str) -> set[str]:
    """The consumers holding messages of queue `name` whose instance is gone."""
    return {h.holder.consumer for h in await held_by(client, name) if h.gone}


def _filtered(rows: list[data.JobRow], task: str, within: int) -> list[data.JobRow]:
    return [
        r
        for r in rows
        if (not task or task.lower() in r.task.lower())
        and (not within or r.age is None or r.age <= within * 60)
    ]


async def jobs_page(request: Request) -> Response:
    names = await _names(request)
    name = request.query_params.get("queue") or (names[0] if names else "")
    try:
        state = JobState(request.query_params.get("state", "waiting"))
    except ValueError:
        states = [s.value for s in JobState]
        raise HTTPException(400, f"unknown state: use one of {states}") from None
    task, within = request.query_params.get("task", ""), _int_param(request, "within")
    client = _client(request)
    rows = await data.jobs_in_state(client, name, state) if name else []
    running = state is JobState.RUNNING
    return render(
        request,
        "jobs.html",
        names=names,
        name=name,
        state=state.value,
        states=[s.value for s in JobState],
        rows=_filtered(rows, task, within),
        task=task,
        within=within,
        watch=f"queue:{name}",
        holders=await busy.holders(client) if running else {},
        workflows=await workflows.recent(_client(request)),
    )


async def job_page(request: Request) -> Response:
    """One job (``?queue=NAME``): where it is, its arguments, result or error."""
    name, job_id = jobview.queue_of(request), request.path_params["id"]
    client = _client(request)
    place = await jobview.find_job(client, name, job_id)
    view = await control.job_view(client, name, job_id)  # status, events
    member = await workflows.member_of(client, job_id)
    return render(request, "job.html", **view, place=place, member=member, watch=f"queue:{name}")


async def workflow_page(request: Request) -> Response:
    """One workflow: its state, its members (state, timing, jobs) and a drawing of its graph."""
    view = await workflows.page(_client(request), request.path_params["id"])
    return render(request, "workflow.html", **view, watch="*")


async def services_page(request: Request) -> Response:
    client = _client(request)
    views = await services.service_views(client, _config(request).namespaces)
    rollouts = await data.rollout_rows(client, [v.namespace for v in views])
    return render(
        request, "services.html", views=views, rollouts=rollouts, now=time.time(), watch="services"
    )


async def busy_page(request: Request) -> Response:
    """Every jobs worker and what it runs now (from their instance records)."""
    found = await busy.workers(_client(request))
    jobs = busy.busy_jobs(found)
    return render(request, "busy.html", workers=found, jobs=jobs, now=time.time(), watch="busy")


async def metrics_page(request: Request) -> Response:
    rows = await data.metrics_hashes(_client(request), _config(request).namespaces)
    hour = charts.hour_charts(request.app.state.live.last_hour())
    return render(request, "metrics.html", rows=rows, hour=hour, watch="metrics")


async def unreachable(request: Request, error: Exception) -> Response:
    """A page asked for while Redis cannot be read: 503, a page that says so and (a GET, which
    is safe to repeat) loads again by itself once the live stream's samples say Redis answers."""
    logger.warning("%s %s: Redis unreachable", request.method, request.url.path, exc_info=error)
    reload = "live" if request.method == "GET" else None
    page = render(
        request, "unreachable.html", error=f"{type(error).__name__}: {error}", reload=reload
    )
    page.status_code = 503
    page.headers["Retry-After"] = "2"
    return page


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    live: Live = app.state.live
    task = asyncio.create_task(sampler(live, app.state.redis, app.state.config))
    try:
        yield
    finally:
        # The flag, not only the cancel: a cancel that lands inside a Redis call can be turned
        # into a connection error by the client and swallowed, which hung the stop.
        live.stop()
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.state.redis.aclose(), 5)


def _audit_to_stderr() -> None:
    """Actions are logged (INFO, ``redline.dashboard.audit``) to stderr unless the embedding
    application configured that logger itself."""
    if not AUDIT.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        AUDIT.addHandler(handler)
        AUDIT.setLevel(logging.INFO)


def create_app(config: DashboardConfig, client: AsyncClient | None = None) -> Starlette:
    """The dashboard app for `config` (its `redis` URL, or the given `client`)."""
    if client is None and config.redis is None:
        raise ValueError("create_app needs config.redis or a client")
    static = StaticFiles(directory=str(resources.files("redline.dashboard") / "static"))
    routes = [
        Route("/", overview),
        Route("/api/queues", api_queues),
        Route("/live", live_stream),
        Route("/queues/{name:path}/dead/{action}", actions.dead_action, methods=["POST"]),
        Route("/queues/{name:path}/purge", actions.purge, methods=["POST"]),
        Route("/queues/{name:path}/recover", actions.recover, methods=["POST"]),
        Route("/queues/{name:path}/release", actions.release, methods=["POST"]),
        Route("/services/scale", actions.scale, methods=["POST"]),
        Route("/queues/{name:path}/control/{action}", control.queue_action, methods=["POST"]),
        Route("/job/{id}/retry", jobview.job_retry, methods=["POST"]),
        Route("/job/{id}/cancel", control.job_action, methods=["POST"]),
        Route("/job/{id}", job_page),
        Route("/queues/{name:path}", queue_page),
        Route("/jobs", jobs_page),
        Route("/workflow/{id}", workflow_page),
        Route("/services", services_page),
        Route("/busy", busy_page),
        Route("/metrics", metrics_page),
        Route("/audit", audit_page),
        Mount("/static", static, name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, config=config)],
        exception_handlers=dict.fromkeys(TRANSIENT, unreachable),
        lifespan=_lifespan,
    )
    app.state.config = config
    app.state.redis = client if client is not None else connect(config.redis or "")
    app.state.live = Live(config.history)
    _audit_to_stderr()
    return app
