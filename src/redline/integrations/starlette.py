"""Starlette and FastAPI: a lifespan that opens and closes the client, and ``enqueue`` for
handlers (``pip install redline[fastapi]`` for FastAPI; Starlette comes with redline).

::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from redline.integrations.starlette import Enqueue, Redline, enqueuer
    from app.tasks import send_mail

    app = FastAPI(lifespan=Redline("redis://localhost:6379/0").lifespan)

    @app.post("/signup")
    async def signup(email: str, enqueue: Annotated[Enqueue, Depends(enqueuer)]):
        job = await enqueue(send_mail, email)
        return {"job": job.id if job else None}

In plain Starlette: ``await enqueuer(request)(send_mail, email)``. An app with a lifespan of
its own enters ``Redline(url).lifespan(app)`` inside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import HTTPConnection

from redline.connection import AsyncClient, connect
from redline.errors import JobError
from redline.jobs import Job, Task, enqueue, enqueue_at, enqueue_in

__all__ = ["Enqueue", "Redline", "enqueuer"]


class Enqueue:
    """``enqueue`` bound to the app's client: ``await enqueue(task, *args, **kwargs)``, and
    ``enqueue.in_(seconds, task, …)`` / ``enqueue.at(when, task, …)`` for later."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def __call__(self, task: Task[..., Any], /, *args: Any, **kwargs: Any) -> Job | None:
        return await enqueue(self.client, task, *args, **kwargs)

    async def in_(
        self, delay: float, task: Task[..., Any], /, *args: Any, **kwargs: Any
    ) -> Job | None:
        return await enqueue_in(self.client, delay, task, *args, **kwargs)

    async def at(
        self, when: dt.datetime | float, task: Task[..., Any], /, *args: Any, **kwargs: Any
    ) -> Job | None:
        return await enqueue_at(self.client, when, task, *args, **kwargs)


class Redline:
    """One app's connection to redline: its `lifespan` opens the client and keeps an `Enqueue`
    on ``app.state.redline`` until shutdown."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url, self.options = url, options

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Open the client at start-up (checking that the server answers), close it at
        shutdown."""
        client = connect(self.url, **self.options)
        try:
            await client.ping()
            app.state.redline = Enqueue(client)
            yield
        finally:
            app.state.redline = None
            await client.aclose()


def enqueuer(request: HTTPConnection) -> Enqueue:
    """The dependency ``Annotated[Enqueue, Depends(enqueuer)]`` (in Starlette, call it with the
    request): the app's `Enqueue`."""
    found = getattr(request.app.state, "redline", None)
    if not isinstance(found, Enqueue):
        raise JobError(
            "redline is not open in this app: give it lifespan=Redline(url).lifespan (or "
            "enter Redline(url).lifespan(app) in the app's own lifespan)"
        )
    return found
