"""himporter's own HTTP/1.1 server (`redline.http.front`), spoken to over a real socket with
raw bytes: keep-alive, pipelining in order, HEAD, HTTP/1.0, bad requests, the limits, 100-continue,
answers whose headers would break the framing, the idle close and the graceful stop. hrouter and
a handler run behind it on a real server, in-process."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import TracerProvider

from redline.http.envelope import Response
from redline.http.front import _BLOCKS, BLOCKS_KEPT, Front, _encode, _header_block
from redline.http.handler import HandlerService, HandlerSet, handler
from redline.http.himporter import Importer, ImporterSettings, Incoming, create_app
from redline.http.hrouter import Router, RouterConfig
from redline.http.worker import WorkerConfig
from redline.runtime import run_service
from redline.runtime.otel import OtelTracer

pytestmark = pytest.mark.timeout(60)

app = HandlerSet()
release = asyncio.Event()


@handler(r"POST /echo", into=app)
def echo(request) -> bytes:  # type: ignore[no-untyped-def]
    return bytes(request.body)


@handler(r"/n/(?P<n>\d+)", into=app)
def numbered(request, n: str) -> str:  # type: ignore[no-untyped-def]
    return f"number {n}"


@handler(r"GET /q", into=app)
def query(request) -> str:  # type: ignore[no-untyped-def]
    return f"{request.path}|{request.query}"


@handler(r"GET /big", into=app)
def big(request) -> bytes:  # type: ignore[no-untyped-def]
    return b"a" * (1 << 20)


@handler(r"GET /bad-header", into=app)
def bad_header(request) -> Response:  # type: ignore[no-untyped-def]
    return Response(request.id, 200, (("x-split", "a\r\nset-cookie: evil=1"),), b"no")


@handler(r"GET /slow", into=app)
async def slow(request) -> str:  # type: ignore[no-untyped-def]
    await release.wait()
    return "slow done"


@dataclass
class Site:
    port: int
    front: Front
    stop: asyncio.Event
    serving: asyncio.Task[None]


@pytest.fixture
async def site(redis_url: str, prefix: str) -> AsyncIterator[Site]:
    global release  # an Event is bound to the loop it is first awaited on: one per test's loop
    release = asyncio.Event()
    common = {"redis": redis_url, "popTimeout": 0.2, "serviceNamespace": prefix}
    routes = [{"path": "/.*", "queue": f"{prefix}:app"}]
    services = [
        Router(RouterConfig.model_validate({**common, "in": f"{prefix}:http", "routes": routes})),
        HandlerService(WorkerConfig.model_validate({**common, "in": f"{prefix}:app"}), app),
    ]
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(run_service(s, s.config, s.hooks(), stopping=stopping))
        for s in services
    ]
    limits = {"out": f"{prefix}:http", "timeout": 20, "maxBody": 100, "maxHeader": 300}
    web = create_app(ImporterSettings.model_validate({**common, **limits}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(100)
    front, stop = Front(web.state.importer, keep_alive=0.3), asyncio.Event()

    async def serve() -> None:
        async with web.state.importer.lifespan(web):
            await front.serve(sock, stop)

    serving = asyncio.create_task(serve())
    try:
        yield Site(sock.getsockname()[1], front, stop, serving)
    finally:
        release.set()
        stop.set()
        await serving
        stopping.set()
        await asyncio.gather(*tasks)


async def _exchange(port: int, data: bytes) -> bytes:
    """Send `data`, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def _get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "host: t", *extra, "", ""]).encode()


def _answers(data: bytes) -> list[bytes]:
    """The 200 answers in `data`, each without its status line."""
    return data.split(b"HTTP/1.1 200 OK\r\n")[1:]


def _bodies(answers: list[bytes]) -> list[bytes]:
    return [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers]


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(site: Site) -> None:
    requests = [_get(f"/n/{n}") for n in (1, 22, 333)] + [_get("/n/4", "connection: close")]
    answers = _answers(await _exchange(site.port, b"".join(requests)))
    assert _bodies(answers) == [b"number 1", b"number 22", b"number 333", b"number 4"]
    assert all(b"content-length: " in a and b"\r\ndate: " in a for a in answers)
    assert b"connection: close" in answers[-1] and b"connection: close" not in answers[0]


async def test_the_path_and_query_reach_the_handler_as_on_the_wire(site: Site) -> None:
    requests = [
        _get("/q?a=1&b=%20#frag"),
        _get("/q#only?frag"),
        _get("/q"),
        b"GET http://t/q?z=2 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    ]
    answers = _answers(await _exchange(site.port, b"".join(requests)))
    assert _bodies(answers) == [b"/q|a=1&b=%20", b"/q|", b"/q|", b"/q|z=2"]


async def test_large_answers_pipelined_arrive_whole(site: Site) -> None:
    data = await _exchange(
        site.port, _get("/big") + _get("/n/9") + _get("/big", "connection: close")
    )
    first, second, third = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b"content-length: 1048576\r\n" in first and first.endswith(
        b"\r\n\r\n" + b"a" * (1 << 20)
    )
    assert second.endswith(b"number 9") and third.endswith(b"a" * (1 << 20))


async def test_head_has_the_length_and_no_body_and_http_1_0_closes(site: Site) -> None:
    head = await _exchange(site.port, b"HEAD /n/7 HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"content-length: 8\r\n" in head and b"connection: close" in head
    old = await _exchange(site.port, b"GET /n/8 HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    assert b"connection: close" in old and old.endswith(b"number 8")  # 1.0 is not kept


async def test_a_request_that_is_not_http_is_400_and_closed(site: Site) -> None:
    data = await _exchange(site.port, _get("/n/1") + b"\x00\x01 nonsense\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"number 1" in data
    assert data.count(b"HTTP/1.1 400 Bad Request\r\n") == 1 and data.endswith(b"bad request\n")


async def test_bodies_over_the_limit_are_413_and_the_connection_goes_on(site: Site) -> None:
    big = b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 101\r\n\r\n" + b"x" * 101
    chunked = b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
    chunked += b"".join(b"14\r\n" + b"y" * 20 + b"\r\n" for _ in range(6)) + b"0\r\n\r\n"
    fits = b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc"
    data = await _exchange(site.port, big + chunked + fits)
    assert data.count(b"HTTP/1.1 413 Request Entity Too Large\r\n") == 2
    assert data.split(b"HTTP/1.1 ")[-1].startswith(b"200 OK") and data.endswith(b"\r\n\r\nabc")


async def test_headers_over_the_limit_are_431(site: Site) -> None:
    data = await _exchange(site.port, _get("/n/1", "x-big: " + "v" * 300, "connection: close"))
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


async def test_expect_100_continue_is_answered_before_the_body(site: Site) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    head = "POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
    writer.write(head.encode())
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    answer = await asyncio.wait_for(reader.readuntil(b"hello"), 30)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()


async def test_an_answer_whose_header_would_split_the_response_is_500(site: Site) -> None:
    data = await _exchange(site.port, _get("/bad-header", "connection: close"))
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"evil" not in data


async def test_an_idle_keep_alive_connection_is_closed(site: Site) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(_get("/n/5"))
    assert (await asyncio.wait_for(reader.read(), 30)).endswith(b"number 5")  # then EOF
    writer.close()
    silent, quiet = await asyncio.open_connection("127.0.0.1", site.port)
    assert await asyncio.wait_for(silent.read(), 30) == b""  # asked nothing: closed too
    quiet.close()
    for _ in range(600):  # the server's side of both is gone
        if not site.front.connections:
            break
        await asyncio.sleep(0.05)
    assert not site.front.connections


async def test_the_stop_answers_what_is_in_hand_then_closes(site: Site) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(_get("/slow"))
    for _ in range(600):  # the request reached the importer
        if len(site.front.importer.dispatcher):
            break
        await asyncio.sleep(0.05)
    site.stop.set()
    for _ in range(600):  # the server stopped taking connections
        try:
            _, probe = await asyncio.open_connection("127.0.0.1", site.port)
        except OSError:
            break
        probe.close()
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the server still accepted connections after the stop")
    release.set()
    data = await asyncio.wait_for(reader.read(), 30)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"slow done")
    assert b"connection: close" in data
    writer.close()
    await asyncio.wait_for(site.serving, 30)


def _mutations(count: int) -> list[bytes]:
    """Requests with bytes flipped, cut, repeated or inserted (a fixed seed: reproducible)."""
    rng = random.Random(25)
    seeds = [
        _get("/n/1"),
        b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\nbody",
        b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
        b"GET http://t/n/2?x=1 HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
    ]
    cases = []
    for _ in range(count):
        data = bytearray(b"".join(rng.choices(seeds, k=rng.randint(1, 3))))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            kind = rng.randrange(4)
            if kind == 0:
                data[at] = rng.randrange(256)
            elif kind == 1:
                del data[at:]
            elif kind == 2:
                data[at:at] = data[at : at + rng.randint(1, 40)] * rng.randint(2, 50)
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            if not data:
                data = bytearray(b"\r\n")
        cases.append(bytes(data))
    return cases


async def _sent_then_closed(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    writer.write_eof()  # the server then answers what it can and closes
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def test_mangled_requests_get_http_answers_or_a_close_and_the_server_goes_on(
    site: Site,
) -> None:
    answers = await asyncio.gather(*(_sent_then_closed(site.port, m) for m in _mutations(80)))
    assert sum(data.startswith(b"HTTP/1.1 200 OK") for data in answers) >= 10
    for data in answers:
        for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data):
            assert status in (b"100", b"200", b"400", b"404", b"413", b"431"), data[:300]
    assert (await _exchange(site.port, _get("/n/3", "connection: close"))).endswith(b"number 3")


async def test_a_request_that_stops_half_way_is_408_and_closed(site: Site) -> None:
    site.front.stall = 0.5
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(b"GET /n/1 HTTP/1.1\r\nhost: t\r\n")  # the head's end never comes
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and answer.endswith(b"stopped half-way\n")
    # A request waiting for its answer is not stalled: the connection waits with it.
    slow, asking = await asyncio.open_connection("127.0.0.1", site.port)
    asking.write(_get("/slow"))
    await asyncio.sleep(1.5)
    release.set()
    assert (await asyncio.wait_for(slow.read(), 30)).endswith(b"slow done")
    asking.close()


def test_an_answers_header_lines_are_built_once_per_header_set() -> None:
    headers = (("content-type", "text/plain"), ("etag", '"1-2"'), ("content-length", "9"))
    answer = _encode(Response("a", 200, headers, b"one"), head=False, keep=True, date=b"")
    assert answer == (
        b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\netag: "1-2"\r\n'
        b"content-length: 3\r\n\r\none"
    )
    head = _encode(Response("b", 200, headers, b""), head=True, keep=False, date=b"")
    assert head.endswith(b"content-length: 9\r\nconnection: close\r\n\r\n")
    # An equal header set (a decoded reply's is a new tuple each time) reuses the lines.
    assert _header_block(tuple(list(headers)))[0] is _header_block(headers)[0]
    bad = (("x-split", "a\r\nset-cookie: evil=1"),)
    for _ in range(2):  # refused every time, never remembered
        with pytest.raises(ValueError):
            _header_block(bad)
    for n in range(BLOCKS_KEPT + 5):  # the memory stays bounded
        _header_block((("x-n", str(n)),))
    assert len(_BLOCKS) <= BLOCKS_KEPT


class _BrokenTracer:
    def http_server(self, *args: object) -> object:
        raise RuntimeError("the tracer broke")


async def test_a_traced_dispatch_that_failed_or_was_cancelled_is_answered_503(
    redis_url: str,
) -> None:
    importer = Importer(ImporterSettings.model_validate({"redis": redis_url}))
    answers: list[Response] = []
    failing = Incoming("f", "GET", "/", "", [], b"", "")
    await importer._trace(_BrokenTracer(), failing, answers.append)
    assert [(a.id, a.status) for a in answers] == [("f", 503)]
    # A span that works, but the wait for the answer is cancelled (the stop).
    traced = OtelTracer(TracerProvider())
    waiting = asyncio.create_task(
        importer._trace(traced, Incoming("c", "GET", "/", "", [], b"", ""), answers.append)
    )
    await asyncio.sleep(0.05)
    assert not answers[1:]  # dispatched, waiting for its answer
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [(a.id, a.status) for a in answers[1:]] == [("c", 503)]


async def test_a_connection_waiting_for_an_answer_is_not_closed_as_idle(site: Site) -> None:
    # A refused request's answer is written at once and leaves no answer waiting; the request
    # read after it in the same packet must keep the connection from looking idle meanwhile.
    big = b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 101\r\n\r\n" + b"x" * 101
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(big + _get("/slow", "connection: close"))
    await asyncio.sleep(1)  # past the keep-alive (0.3 s here) and a few of its sweeps
    release.set()
    try:
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 413 ") and data.endswith(b"slow done")
