"""The collecting side: an HTTP endpoint that records each page hit as a job and returns at once.

It knows nothing of the database: it only puts a job document on the `hits` queue. Run it with
``uvicorn examples.analytics.api:app --port 8000`` (REDIS_URL names the server).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from redline.connection import connect
from redline.jobs import Task, enqueue

# The worker's task, by name: the endpoint does not import the worker's code or its database.
RECORD_HIT = Task.ref("examples.analytics.tasks.record_hit", queue="hits")


async def hit(request: Request) -> Response:
    """``GET /hit?url=…`` (or ``POST /hit`` with form field url): record one page view."""
    url = request.query_params.get("url") or str((await request.form()).get("url", ""))
    if not url:
        return JSONResponse({"error": "give the page as ?url=..."}, 400)
    job = await enqueue(
        request.app.state.redis,
        RECORD_HIT,
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
        at=time.time(),
        url=url,
    )
    return JSONResponse({"queued": job.id if job else None}, 202)


def create_app(redis_url: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await app.state.redis.aclose()

    app = Starlette(routes=[Route("/hit", hit, methods=["GET", "POST"])], lifespan=lifespan)
    app.state.redis = connect(redis_url)
    return app


app = create_app(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
