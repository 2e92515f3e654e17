"""The reading side: a page of hits per URL, from the SQLite database the worker fills.

``uvicorn examples.analytics.summary:app --port 8001`` (ANALYTICS_DB names the database).
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from examples.analytics.tasks import database


def hits_per_url() -> list[tuple[str, int]]:
    with database() as db:
        rows = db.execute("SELECT url, COUNT(*) FROM hits GROUP BY url ORDER BY 2 DESC, 1")
        return [(str(url), int(n)) for url, n in rows]


async def summary(request: Request) -> HTMLResponse:
    rows = "".join(f"<tr><td>{html.escape(url)}</td><td>{n}</td></tr>" for url, n in hits_per_url())
    return HTMLResponse(
        "<!doctype html><title>Hits per URL</title><h1>Hits per URL</h1>"
        f"<table><tr><th>url</th><th>hits</th></tr>{rows}</table>"
    )


app = Starlette(routes=[Route("/", summary)])
