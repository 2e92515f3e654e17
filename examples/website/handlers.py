"""A handler service in a few lines: `redline handler handlers.py --set in=website:hello`."""

from __future__ import annotations

from redline.http import Request, handler


@handler(r"GET /hello/(?P<name>\w+)")
async def hello(request: Request, name: str) -> dict[str, str]:
    return {"hello": name, "client": request.client}
