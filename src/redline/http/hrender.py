"""hrender: renders a Jinja2 template with data an rquery declaration fetches from Redis.

The Python counterpart of the seed's "h-react". Each page (see `redline.http.pages`) names a
path pattern, the rquery commands whose saved values feed it, and a template; a page without a
template is a JSON endpoint answering ``{"values": {...}}``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

from redline.errors import QueryError
from redline.http.envelope import Request, Response
from redline.http.pages import Pages, PageSpec
from redline.http.worker import HttpService, Outcome, WorkerConfig
from redline.rquery.query import rquery
from redline.runtime import Context

__all__ = ["Render", "RenderConfig"]

log = logging.getLogger(__name__)


class RenderConfig(WorkerConfig):
    """hrender's configuration: ``in``, the ``templates`` directory and the ``pages``."""

    templates: Path | None = Field(None, description="directory of Jinja2 templates")
    pages: list[PageSpec] = Field(default_factory=list, description="ordered pages")


class Render(HttpService):
    name = "hrender"
    concurrent = True

    def __init__(self, config: RenderConfig) -> None:
        super().__init__(config)
        self.pages = Pages(config.pages, config.templates)

    async def respond(self, ctx: Context, request: Request) -> Outcome:
        found = self.pages.find(request)
        if found is None:
            return Response.text(request.id, "not found\n", 404)
        page, params = found
        try:
            result = await rquery(ctx.redis, page.query(params))
        except QueryError as exc:
            log.warning(
                "hrender query failed id=%s path=%s error=%s", request.id, request.path, exc
            )
            return Response.text(request.id, "query failed\n", 500)
        return self.pages.render(page, request.with_params(params), result["values"])
