"""himporter: the HTTP front. Each request becomes a message on the routing queue; the response
that comes back on this instance's own reply list is sent to the client.

`redline himporter` serves it with its own HTTP/1.1 protocol (`redline.http.front`), which
calls `Importer.refusal` / `too_large` (the limits) and `Importer.start` (the dispatch) from
the parser's callbacks. Built with `create_app(settings)` it is also an ASGI app: a Starlette
app (for its lifespan and ``app.state``) whose one mount is the importer itself, a plain ASGI
callable applying the same limits and dispatch — for embedding and in-process tests. Pushes are
batched (one round trip carries every request that arrived meanwhile) and replies are popped in
batches.

Limits: a body over ``maxBody`` → 413; headers over ``maxHeader`` bytes → 431; no response
within ``timeout`` seconds → 504; more than ``maxConcurrency`` requests in flight → 503 with
``Retry-After``. Any number of replicas can run: each has its own reply list.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

from msgspec import Struct
from pydantic import Field
from redis.exceptions import ResponseError
from starlette.applications import Starlette
from starlette.routing import Mount

from redline.config import ServiceConfig
from redline.connection import AsyncClient, HeldConnection, connect
from redline.errors import EnvelopeError
from redline.http.envelope import Request, Response
from redline.http.mdispatch import Answer, Dispatcher, settle
from redline.runtime import Context, assemble, run_service
from redline.runtime.tracing import tracer, with_carrier

__all__ = ["Importer", "ImporterSettings", "Incoming", "create_app"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PUSH_BATCH = 512
REPLY_BATCH = 512


class ImporterSettings(ServiceConfig):
    """himporter's configuration (file names in camelCase)."""

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    out: str = Field("redline:http", description="the routing queue hrouter reads")
    replies: str = Field("redline:http:reply", description="prefix of per-instance reply lists")
    timeout: float = Field(10, gt=0, description="seconds a request may take → else 504")
    max_body: int = Field(1 << 20, alias="maxBody", ge=0, description="bytes → else 413")
    max_header: int = Field(8192, alias="maxHeader", gt=0, description="bytes → else 431")
    max_concurrency: int = Field(1000, alias="maxConcurrency", gt=0, description="→ else 503")
    retry_after: int = Field(1, alias="retryAfter", ge=0, description="seconds, with 503")
    pop_timeout: float = Field(1, alias="popTimeout", gt=0)


class _TooLarge(Exception):
    pass


class Incoming(Struct, frozen=True):
    """A request as read from the client, before it becomes an envelope: the path and query
    as on the wire (latin-1), header names lower-case, ``client`` as ``host:port``. (A msgspec
    struct: made per request without a Python frame, unlike a NamedTuple.)"""

    id: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client: str


class Importer:
    """The ASGI callable; its `lifespan` starts and stops the push and reply loops."""

    def __init__(self, settings: ImporterSettings) -> None:
        self.settings = settings
        self.instance = os.urandom(6).hex()
        self.reply_key = f"{settings.replies}:{self.instance}"
        serves = f"http://{settings.host}:{settings.port} -> {settings.out}"
        self.assembly = assemble(
            "himporter", settings, serves=serves, timeout=settings.timeout, gated=False
        )
        self.metrics = self.assembly.metrics
        self.dispatcher = Dispatcher(self.metrics, settings.timeout)
        self.outbox: list[tuple[str, bytes]] = []  # (request id, envelope) not pushed yet
        self._outbox_ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self._ids = itertools.count()
        self._client: AsyncClient | None = None
        self._traced: set[asyncio.Task[None]] = set()  # traced dispatches under way

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self.handle(scope, receive)
        await _send(scope, send, response)

    def next_id(self) -> str:
        """A new request id, unique across replicas (the instance's, then a counter)."""
        return f"{self.instance}-{next(self._ids)}"

    def refusal(self, request_id: str, header_bytes: int) -> Response | None:
        """The answer to a request refused before its body is read — 503 past
        ``maxConcurrency`` requests in flight, 431 past ``maxHeader`` bytes of headers — or
        None; counted (``rejected``, ``headers``)."""
        settings = self.settings
        if len(self.dispatcher.pending) >= settings.max_concurrency:
            self.metrics.count("rejected")
            retry = [("retry-after", str(settings.retry_after))]
            return Response.text(request_id, "too many requests in flight\n", 503, headers=retry)
        if header_bytes > settings.max_header:
            self.metrics.count("headers")
            return Response.text(request_id, "request headers too large\n", 431)
        return None

    def too_large(self, request_id: str) -> Response:
        """The 413 for a body over ``maxBody`` (counted ``toolarge``)."""
        self.metrics.count("toolarge")
        return Response.text(request_id, "request body too large\n", 413)

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        """The response for one HTTP request (ASGI): dispatched, or refused by a limit."""
        request_id, headers, size = self.next_id(), [], 0
        for name, value in scope["headers"]:  # one pass: decoded and measured
            size += len(name) + len(value) + 4
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
        refused = self.refusal(request_id, size)
        if refused is not None:
            return refused
        try:
            body = await _read_body(receive, headers, self.settings.max_body)
        except _TooLarge:
            return self.too_large(request_id)
        raw = scope.get("raw_path") or scope["path"].encode()
        client = scope.get("client") or ("", 0)
        incoming = Incoming(
            request_id,
            scope["method"],
            raw.decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            f"{client[0]}:{client[1]}",
        )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.start(incoming, partial(settle, future))
        return await future

    def start(self, incoming: Incoming, answer: Answer) -> None:
        """Dispatch a request that passed the limits; `answer` is called once with its
        response (or the 504 at the timeout, the 503 when Redis is down or at the stop)."""
        traced = tracer()
        if traced is None:
            self._dispatch(self._envelope(incoming, incoming.headers), answer)
            return
        task = asyncio.ensure_future(self._trace(traced, incoming, answer))
        self._traced.add(task)  # (the loop keeps only a weak reference to a task)
        task.add_done_callback(self._traced.discard)

    async def _trace(self, traced: Any, incoming: Incoming, answer: Answer) -> None:
        response = Response.text(incoming.id, "service unavailable\n", 503)
        try:
            with traced.http_server(incoming.method, incoming.path, incoming.headers) as span:
                headers = list(with_carrier(incoming.headers, span.carrier))
                future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
                self._dispatch(self._envelope(incoming, headers), partial(settle, future))
                response = await future
                span.answered(response.status)
        except Exception:
            log.exception("himporter: the traced dispatch of id=%s failed", incoming.id)
        finally:  # answered whatever happened: a 503 if the tracing failed or was cancelled
            answer(response)

    def _dispatch(self, request: Request, answer: Answer) -> None:
        """Queue `request` for the next push; `answer` gets its response."""
        self.dispatcher.track(request.id, answer)
        if not self.outbox:  # (else it is set: the push loop clears it only with none left)
            self._outbox_ready.set()
        self.outbox.append((request.id, request.encode()))

    def _envelope(self, incoming: Incoming, headers: list[tuple[str, str]]) -> Request:
        return Request(
            id=incoming.id,
            method=incoming.method,
            path=incoming.path,
            query=incoming.query,
            headers=tuple(headers),
            body=incoming.body,
            client=incoming.client,
            deadline=time.time() + self.settings.timeout,
            reply=self.reply_key,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Start the push loop and the reply reader (on the service runner); stop them after."""
        assert self.settings.redis, "create_app needs settings.redis (the CLI resolves it)"
        self._client = connect(self.settings.redis)
        pusher = asyncio.create_task(self._push_loop(HeldConnection(self._client)))
        sweeper = asyncio.create_task(self.dispatcher.sweep())
        reader = asyncio.create_task(
            run_service(ReplyReader(self), self.settings, self.assembly.hooks(), self.stopping)
        )
        log.info(
            "himporter instance=%s replies=%s out=%s",
            self.instance,
            self.reply_key,
            self.settings.out,
        )
        try:
            yield
        finally:
            self.stopping.set()
            self.dispatcher.cancel_all()
            pusher.cancel()
            sweeper.cancel()
            await asyncio.gather(pusher, sweeper, reader, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._client.delete(self.reply_key)
            await self._client.aclose()

    async def _push_loop(self, link: HeldConnection) -> None:
        # A plain LPUSH is a ReliableQueue push without queue ids (the envelope has its own).
        while True:
            if not self.outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            batch, self.outbox = self.outbox[:PUSH_BATCH], self.outbox[PUSH_BATCH:]
            try:
                [pushed] = await link.run([("LPUSH", self.settings.out, *[p for _, p in batch])])
                if isinstance(pushed, Exception):
                    raise pushed
            except Exception as exc:  # Redis down: answer now rather than at the timeout
                log.warning("himporter push failed requests=%d error=%r", len(batch), exc)
                for request_id, _ in batch:
                    answer = Response.text(request_id, "service unavailable\n", 503)
                    self.dispatcher.fail(request_id, answer)

    def deliver(self, replies: list[bytes]) -> None:
        """Hand each reply to the request waiting for it (unknown or late ones are counted)."""
        now = time.monotonic()  # one clock reading for the batch popped together
        for data in replies:
            try:
                self.dispatcher.resolve(Response.decode(data), now)
            except EnvelopeError as exc:
                log.warning("himporter dropped a bad reply error=%s", exc)


class ReplyReader:
    """The runner service of a himporter: each step pops a batch of this instance's replies."""

    name = "himporter"

    def __init__(self, importer: Importer) -> None:
        self.importer = importer
        self.blmpop = True  # False on servers older than Redis 7.0
        self.link: HeldConnection | None = None

    async def step(self, ctx: Context) -> None:
        key, wait = self.importer.reply_key, ctx.config.pop_timeout
        if self.link is None:
            self.link = HeldConnection(ctx.redis)
        if self.blmpop:
            replies = await self._blmpop(self.link, key, wait)
        else:
            replies = await self._rpop(ctx.redis, key, wait)
        self.importer.deliver(replies)

    async def _blmpop(self, link: HeldConnection, key: str, wait: float) -> list[bytes]:
        """Every reply waiting (up to a batch), or the first to come, in one round trip."""
        command = ("BLMPOP", wait, 1, key, "RIGHT", "COUNT", REPLY_BATCH)
        [found] = await link.run([command])
        if isinstance(found, ResponseError):
            if "unknown command" not in str(found).lower():
                raise found
            log.info("himporter: the server has no BLMPOP (before Redis 7.0); using BRPOP")
            self.blmpop = False
            return []
        return list(found[1]) if found else []

    async def _rpop(self, redis: AsyncClient, key: str, wait: float) -> list[bytes]:
        replies: Any = await redis.rpop(key, REPLY_BATCH)
        if not replies:
            found = await redis.brpop([key], timeout=wait)
            replies = [found[1]] if found else []
        return list(replies)


async def _read_body(receive: Receive, headers: list[tuple[str, str]], limit: int) -> bytes:
    framed = False  # HTTP/1.1: a request has a body only with one of these two headers
    for name, value in headers:
        if name == "content-length":
            framed = True
            if value.strip().isdigit() and int(value) > limit:
                raise _TooLarge
        elif name == "transfer-encoding":
            framed = True
    if not framed:
        return b""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


_NO_BODY = {204, 304}
_HOP = {"connection", "transfer-encoding", "keep-alive"}


async def _send(scope: Scope, send: Send, response: Response) -> None:
    headers, length = [], False
    for name, value in response.headers:  # one pass: encoded, hop-by-hop ones dropped
        if name not in _HOP:
            length = length or name == "content-length"
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
    body = response.body
    if not length and response.status not in _NO_BODY:
        headers.append((b"content-length", str(len(body)).encode()))
    if scope["method"] == "HEAD" or response.status in _NO_BODY:
        body = b""
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ImporterSettings) -> Starlette:
    """The himporter ASGI app; ``app.state.importer`` is the `Importer`."""
    importer = Importer(settings)
    app = Starlette(routes=[Mount("", app=importer)], lifespan=importer.lifespan)
    app.state.importer = importer
    return app
