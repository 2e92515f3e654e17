"""The decorator API for writing your own handler service in a few lines.

::

    # hello.py
    from redline.http import handler

    @handler("GET /hello/(?P<name>\\w+)")
    async def hello(request, name):
        return f"hello {name}\\n"

    $ redline handler hello.py --set in=web:hello

The pattern is ``[METHOD[,METHOD…] ]PATH_REGEX``; the regex must match the whole decoded path
and its named groups arrive as keyword arguments (hrouter's are in ``request.params``). A
handler may be sync or async and return a `Response`, ``str`` (text/plain), ``bytes``
(application/octet-stream), a ``dict`` or ``list`` (JSON), or a ``(status, body)`` tuple.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redline.http.envelope import Request, Response
from redline.http.worker import HttpService, Outcome, WorkerConfig
from redline.runtime import Context

__all__ = [
    "HandlerFunc",
    "HandlerService",
    "HandlerSet",
    "handler",
    "registry",
    "to_response",
]

log = logging.getLogger(__name__)

HandlerFunc = Callable[..., Any]
_METHOD = re.compile(r"^([A-Z]+(?:,[A-Z]+)*)\s+(\S.*)$")


@dataclass(frozen=True)
class Handler:
    methods: frozenset[str] | None
    path: re.Pattern[str]
    func: HandlerFunc

    @classmethod
    def parse(cls, spec: str, func: HandlerFunc) -> Handler:
        found = _METHOD.match(spec.strip())
        methods, pattern = (found.group(1), found.group(2)) if found else (None, spec.strip())
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"@handler({spec!r}): {pattern!r} is not a regex ({exc})") from None
        return cls(frozenset(methods.split(",")) if methods else None, compiled, func)


@dataclass
class HandlerSet:
    """Handlers in the order they were declared; the first that matches answers."""

    handlers: list[Handler] = field(default_factory=list)

    def add(self, spec: str, func: HandlerFunc) -> None:
        self.handlers.append(Handler.parse(spec, func))

    def __len__(self) -> int:
        return len(self.handlers)

    async def respond(self, request: Request) -> Response:
        """Run the first matching handler; 404 when none matches, 500 when it raises."""
        path = request.route_path
        for entry in self.handlers:
            if entry.methods is not None and request.method not in entry.methods:
                continue
            found = entry.path.fullmatch(path)
            if found:
                params = {k: v for k, v in found.groupdict().items() if v is not None}
                return await _call(entry.func, request, params)
        return Response.text(request.id, "not found\n", 404)


registry = HandlerSet()


def handler(spec: str, into: HandlerSet | None = None) -> Callable[[HandlerFunc], HandlerFunc]:
    """Declare `func` as the handler for requests matching `spec` (``"GET /hello/(?P<n>\\w+)"``)."""

    def register(func: HandlerFunc) -> HandlerFunc:
        (registry if into is None else into).add(spec, func)
        return func

    return register


async def _call(func: HandlerFunc, request: Request, params: dict[str, str]) -> Response:
    try:
        result = func(request, **params)
        if inspect.isawaitable(result):
            result = await result
        return to_response(request, result)
    except Exception:
        log.exception(
            "handler %s failed id=%s path=%s", func.__qualname__, request.id, request.path
        )
        return Response.text(request.id, "internal server error\n", 500)


def to_response(request: Request, result: object) -> Response:
    """Turn what a handler returned into a `Response` for `request`."""
    status = 200
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
        status, result = result
    if isinstance(result, Response):
        return result if result.id == request.id else Response(request.id, *_rest(result))
    if isinstance(result, str):
        return Response.text(request.id, result, status)
    if isinstance(result, bytes):
        return Response.of(request.id, result, "application/octet-stream", status)
    if isinstance(result, dict | list) or result is None:
        return Response.json(request.id, result, status)
    raise TypeError(f"handler returned {type(result).__name__}; return Response, str, bytes, dict")


def _rest(response: Response) -> tuple[int, Any, bytes]:
    return response.status, response.headers, response.body


class HandlerService(HttpService):
    """Runs the `HandlerSet` of a user's module (see the module docstring)."""

    name = "handler"
    concurrent = True

    def __init__(self, config: WorkerConfig, handlers: HandlerSet | None = None) -> None:
        super().__init__(config)
        self.handlers = registry if handlers is None else handlers

    async def respond(self, ctx: Context, request: Request) -> Outcome:
        return await self.handlers.respond(request)
