"""himporter's own HTTP/1.1 server: httptools parses, each request goes straight to the importer.

uvicorn's ASGI cycle costs more CPU per request than the rest of the web chain's front (a task,
two ``send`` messages with their checks, a scope dict; measured in docs/benchmarks.md). Here a
request is parsed by httptools (the parser uvicorn uses), checked against the importer's limits
and dispatched from the parser's callbacks; its answer is written, head and body in one write,
from the future's callback. What it does, as an HTTP/1.1 server:

- keep-alive (a connection idle ``KEEP_ALIVE`` seconds is closed, a new one that asks nothing
  too; one that stops sending half-way through a request for ``STALL`` seconds gets 408 and is
  closed, so slow clients cannot hold connections forever), HTTP/1.0 (not kept) and
  ``Connection: close``; pipelined requests are answered in order (reading pauses while
  ``PIPELINED`` answers wait, and while the client does not read what is written); a client
  that half-closes still gets its answers;
- ``Expect: 100-continue`` answered before the body is read; 413 (a body over ``maxBody``), 431
  and 503 as the importer decides, answered at once; the rest of a refused body is read and
  dropped, so the connection goes on;
- a request that is not HTTP → 400 and the connection closes; an answer whose headers would
  break the framing (a control character, a name that is not a token, a value that is not
  latin-1) → 500;
- ``Date`` on every answer, ``Content-Length`` from the body (a ``HEAD`` answer keeps the one
  its handler gave), hop-by-hop headers of the envelope dropped;
- on stop (`Front.serve`'s event): no new connections, idle ones closed, the others once their
  answers are written (at most ``timeout`` + 1 seconds later).

The ASGI app (`redline.http.himporter.create_app`) stays for embedding and in-process tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import re
import socket
import time
from collections import deque
from functools import partial

import httptools
from msgspec import Struct

from redline.http.envelope import Headers, Response
from redline.http.himporter import Importer, Incoming

__all__ = ["KEEP_ALIVE", "PIPELINED", "STALL", "Front", "FrontProtocol"]

log = logging.getLogger(__name__)

KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open (uvicorn's default)
STALL = 60.0  # seconds a request may go without a byte before 408 (nginx's client timeouts)
PIPELINED = 16  # answers one connection may wait for before it stops reading requests
MAX_URL = 65536  # bytes of a request target; a longer one is a bad request

_NO_BODY = frozenset((204, 304))
_HOP = frozenset(("connection", "transfer-encoding", "keep-alive", "content-length"))
# Header lines whose name is an RFC 9110 token and whose value has no control but tab (no CR,
# no LF: nothing that could end the head early or add a header).
_HEADER_LINES = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {code} {phrase}\r\n".encode("latin-1")


_STATUS = {code: _status_line(code) for code in range(100, 600)}


class _Answer(Struct):
    """An answer in a connection's queue: its response once known (None until then), whether
    it answers a HEAD, whether the connection stays open after it. (A msgspec struct: made per
    request without a Python `__init__` frame.)"""

    response: Response | None
    head: bool
    keep: bool


class Front:
    """The server: one `FrontProtocol` per connection, all answered by `importer`."""

    def __init__(
        self, importer: Importer, keep_alive: float = KEEP_ALIVE, stall: float = STALL
    ) -> None:
        self.importer = importer
        self.keep_alive, self.stall = keep_alive, stall
        self.connections: set[FrontProtocol] = set()
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.drained = asyncio.Event()  # set at the stop once the last connection is gone
        self._date = (0, b"")

    def date(self) -> bytes:
        """The ``Date`` header line, made once a second."""
        now = int(time.time())
        if self._date[0] != now:
            stamp = email.utils.formatdate(now, usegmt=True).encode()
            self._date = (now, b"date: " + stamp + b"\r\n")
        return self._date[1]

    async def serve(self, sock: socket.socket, stop: asyncio.Event) -> None:
        """Serve on the listening `sock` until `stop` is set, then close gracefully."""
        self.loop = loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: FrontProtocol(self), sock=sock, backlog=2048)
        sweeper = asyncio.create_task(self._close_idle())
        try:
            await stop.wait()
        finally:
            server.close()
            sweeper.cancel()
            await self._drain(self.importer.settings.timeout + 1)

    async def _close_idle(self) -> None:
        """Close connections idle for ``keep_alive`` seconds (nothing asked, nothing to answer),
        and those stalled half-way through a request for ``stall`` seconds (nothing to answer
        yet, no byte since), looking every half of the shorter: a sweep costs nothing per
        request, a timer per answer did (about 2 µs to arm and cancel)."""
        assert self.loop is not None
        while True:
            await asyncio.sleep(min(self.keep_alive, self.stall) / 2)
            now = self.loop.time()
            for connection in list(self.connections):
                since = connection.idle_since
                if since is not None and now - since >= self.keep_alive:
                    connection.transport.close()
                elif since is None and now - connection.heard >= self.stall:
                    connection.stalled()

    async def _drain(self, grace: float) -> None:
        self.stopping = True
        for connection in list(self.connections):
            connection.stop()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), grace)
        for connection in list(self.connections):
            connection.transport.abort()


class FrontProtocol(asyncio.Protocol):
    """One client connection: httptools' callbacks build each request; answers go out in
    order as the importer's dispatcher hands them over (`_answered`)."""

    def __init__(self, front: Front) -> None:
        self.front, self.importer = front, front.importer
        self.max_header = front.importer.settings.max_header
        assert front.loop is not None, "made by Front.serve"
        self.loop = front.loop
        self.parser = httptools.HttpRequestParser(self)
        # A pipelined request after one that closes the connection is read, not an error
        # (httptools 0.6.2 and later; pyproject allows 0.6, whose parser has no such option).
        with contextlib.suppress(AttributeError):
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client = ""
        self.answers: deque[_Answer] = deque()
        self.idle_since: float | None = None  # when it last had nothing to read or answer
        self.heard = self.loop.time()  # when its last bytes came
        self.write_paused = self.read_paused = self.closing = False
        self.on_message_begin()

    # -- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        self.front.connections.add(self)
        self.idle_since = self.loop.time()  # a connection that never asks is closed too
        if self.front.stopping:
            self.stop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        if self.front.stopping and not self.front.connections:
            self.front.drained.set()
        self.closing = True
        self.answers.clear()  # their responses come unseen; the dispatcher forgets them

    def data_received(self, data: bytes) -> None:
        if self.closing:  # after a parse error, an upgrade or the stop: nothing more is read
            return
        self.idle_since, self.heard = None, self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # served as plain HTTP; nothing after it is read
            self._close_after_answers()
        except httptools.HttpParserError as exc:
            log.info("himporter: bad request from %s: %s", self.client, exc)
            self._fail(Response.text("", "bad request\n", 400))

    def eof_received(self) -> bool:
        """The client sent all it will (a half close): answer what is in hand, then close."""
        if not self.answers:
            return False  # the transport closes
        self._close_after_answers()
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self._reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._reading()

    def stalled(self) -> None:
        """A request begun and not sent on (the sweep found no byte for ``stall`` seconds):
        408, then close. Not while answers are in hand: the client may be waiting for them."""
        if self.answers or self.closing or self.transport.is_closing():
            return
        log.info("himporter: request from %s stalled: 408 and closed", self.client)
        self._fail(Response.text("", "request timeout: the request stopped half-way\n", 408))

    def stop(self) -> None:
        """At the server's stop: close now if idle, else once the answers in hand are out."""
        if not self.answers:
            self.transport.close()
        else:
            self._close_after_answers()

    def _close_after_answers(self) -> None:
        self.closing = True
        self._reading()

    def _reading(self) -> None:
        paused = self.closing or self.write_paused or len(self.answers) >= PIPELINED
        if paused == self.read_paused or self.transport.is_closing():
            return  # (called twice per request: the transport is asked only on a change)
        self.read_paused = paused
        with contextlib.suppress(RuntimeError):  # the transport is closing already
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _fail(self, response: Response) -> None:
        """Answer `response` after what is queued, then close (the stream cannot go on)."""
        self.answers.append(_Answer(response, False, False))
        self._close_after_answers()
        self._write_ready()

    # -- httptools' callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new request: its state starts empty."""
        self.url, self.size = b"", 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.body_size, self.expect = 0, False
        self.request_id, self.method = "", ""
        self.refused: Response | None = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL:  # raised in a callback: httptools reports a parse error
            raise ValueError(f"a URL longer than {MAX_URL} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace; RFC 9110 drops it
        self.size += len(name) + len(value) + 4
        if self.size <= self.max_header:  # past it, only counted (431)
            lowered = name.decode("latin-1").lower()
            self.headers.append((lowered, value.decode("latin-1")))
            if lowered == "expect" and value.lower() == b"100-continue":
                self.expect = True

    def on_headers_complete(self) -> None:
        importer, parser = self.importer, self.parser
        self.request_id = request_id = importer.next_id()
        self.method = parser.get_method().decode("latin-1")
        refused = importer.refusal(request_id, self.size)
        if refused is None and _declared(self.headers) > importer.settings.max_body:
            refused = importer.too_large(request_id)
        if refused is not None:
            self._refuse(refused)
        elif self.expect and not self.answers:  # an interim answer may not overtake a final one
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.refused is not None:
            return
        self.body_size += len(body)
        if self.body_size > self.importer.settings.max_body:
            self._refuse(self.importer.too_large(self.request_id))
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused is not None:
            return  # answered already; its body (if any) was read and dropped
        answer = _Answer(None, self.method == "HEAD", self._keep_alive())
        self.answers.append(answer)  # in the queue first: an answer may come at once
        # Not idle while it waits, even if an answer written earlier in this read (a refused
        # request's) left the queue empty and marked it idle then.
        self.idle_since = None
        self.importer.start(self._incoming(), partial(self._answered, answer))
        if len(self.answers) >= PIPELINED:
            self._reading()

    def _refuse(self, response: Response) -> None:
        """Answer a refused request now (in its turn); what is left of its body is read and
        dropped, so the connection stays usable."""
        self.refused, self.body = response, []
        self.answers.append(_Answer(response, self.method == "HEAD", self._keep_alive()))
        self._write_ready()

    def _keep_alive(self) -> bool:
        # HTTP/1.0's keep-alive (a header echoed back) is not offered: such a client is closed.
        parser = self.parser
        return (
            parser.get_http_version() == "1.1" and parser.should_keep_alive() and not self.closing
        )

    def _incoming(self) -> Incoming:
        if self.url[:1] != b"/":  # an absolute URL (or "*")
            url = httptools.parse_url(self.url)
            path, query = (url.path or b"/").decode("latin-1"), (url.query or b"").decode("latin-1")
        else:  # (tested as text: `b"?" in path` makes and drops a TypeError first, in 3.11)
            path, query = self.url.decode("latin-1"), ""
            if "?" in path or "#" in path:
                path, _, query = path.split("#", 1)[0].partition("?")
        body = b"".join(self.body)
        return Incoming(self.request_id, self.method, path, query, self.headers, body, self.client)

    # -- answers ----------------------------------------------------------------------------

    def _answered(self, answer: _Answer, response: Response) -> None:
        """The dispatcher's call with a request's response: written now if its turn has come."""
        answer.response = response
        self._write_ready()

    def _write_ready(self) -> None:
        """Write the answers at the front of the queue that are ready (in request order)."""
        answers = self.answers
        if self.transport.is_closing():
            answers.clear()
            return
        while answers:
            answer = answers[0]
            response = answer.response
            if response is None:
                break
            answers.popleft()
            keep = answer.keep and not (self.closing and not answers)
            self.transport.write(self._encoded(response, answer.head, keep))
            if not keep:
                self.transport.close()
                return
        if not answers:
            self.idle_since = self.loop.time()
        if self.read_paused or len(answers) >= PIPELINED:  # (else reading cannot change)
            self._reading()

    def _encoded(self, response: Response, head: bool, keep: bool) -> bytes:
        try:
            return _encode(response, head, keep, self.front.date())
        except (UnicodeEncodeError, ValueError) as exc:
            log.warning("himporter: answer id=%s cannot be sent: %s", response.id, exc)
            failed = Response.text(response.id, "internal server error\n", 500)
            return _encode(failed, head, keep, self.front.date())


def _declared(headers: list[tuple[str, str]]) -> int:
    """The Content-Length a request declares (0 when none or not a number)."""
    for name, value in headers:
        if name == "content-length":
            value = value.strip()
            return int(value) if value.isdigit() else 0
    return 0


def _encode(response: Response, head: bool, keep: bool, date: bytes) -> bytes:
    """The answer's bytes: status line, headers, ``Date``, framing, then the body (none for
    HEAD, 1xx, 204 and 304). Raises ValueError for a header that would break the framing (and
    UnicodeEncodeError for one that is not latin-1)."""
    status, body = response.status, response.body
    lines, length = _header_block(response.headers)
    parts = [_STATUS[status], lines, date]
    if status >= 200 and status not in _NO_BODY:
        if not (head and length.isdigit()):  # a HEAD answer may say how long the body would be
            length = str(len(body))
        parts.append(b"content-length: %s\r\n" % length.encode())
        if not head:
            parts += (b"" if keep else b"connection: close\r\n", b"\r\n", body)
            return b"".join(parts)
    if not keep:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


_BLOCKS: dict[Headers, tuple[bytes, str]] = {}
BLOCKS_KEPT = 1024  # distinct header sets remembered (a file's answers all share one)


def _header_block(headers: Headers) -> tuple[bytes, str]:
    """The header lines of an answer (hop-by-hop ones dropped, checked, encoded) and the
    Content-Length it gave ("" if none). Remembered per header set: the answers of one file,
    or of one route, repeat theirs, and building and checking the lines was most of
    `_encode`'s cost. The headers are joined as text and encoded once: cheaper than a name and
    a value encoded and checked at a time."""
    block = _BLOCKS.get(headers)
    if block is not None:
        return block
    lines, length = [], ""
    for name, value in headers:
        if name in _HOP:
            if name == "content-length":
                length = value
            continue
        lines.append(f"{name}: {value}\r\n")
    text = "".join(lines)
    # One line per header: a value holding CR LF would otherwise read as two good lines.
    if text.count("\n") != len(lines) or _HEADER_LINES.fullmatch(text) is None:
        raise ValueError("a header name that is not a token, or a control character in a value")
    block = (text.encode("latin-1"), length)
    if len(_BLOCKS) >= BLOCKS_KEPT:
        _BLOCKS.clear()
    _BLOCKS[headers] = block
    return block
