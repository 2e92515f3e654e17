"""hrouter: forwards each request to the handler queue of the first route that matches.

Routes are an ordered list in config (see `redline.http.routes`); a request that matches none
is answered 404 at once. The route's named groups travel on in the envelope's ``params``.
"""

from __future__ import annotations

from pydantic import Field

from redline.http.envelope import Request, Response
from redline.http.routes import RouteSpec, compile_routes
from redline.http.worker import Forward, HttpService, Outcome, WorkerConfig
from redline.runtime import Context

__all__ = ["Router", "RouterConfig"]


class RouterConfig(WorkerConfig):
    """hrouter's configuration: ``in`` (the routing queue) and ``routes``."""

    routes: list[RouteSpec] = Field(default_factory=list, description="ordered routes")


class Router(HttpService):
    name = "hrouter"

    def __init__(self, config: RouterConfig) -> None:
        super().__init__(config)
        self.table = compile_routes(config.routes)

    async def respond(self, ctx: Context, request: Request) -> Outcome:
        host = request.host if self.table.uses_host else ""
        found = self.table.match(request.method, request.route_path, host)
        if found is None:
            return Response.text(request.id, "not found\n", 404)
        return Forward(found.route.queue, request.with_params(found.params))
