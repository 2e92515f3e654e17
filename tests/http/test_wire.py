"""One socket write per response: the coalescing transport, on real sockets and under uvicorn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
import uvicorn

from redline.http.wire import FLUSH_AT, CoalescingHttpToolsProtocol, CoalescingTransport
from tests.servers import free_port

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _loops() -> list[Any]:
    loops: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return loops
    return [*loops, pytest.param(uvloop.new_event_loop, id="uvloop")]


def run(factory: LoopFactory, coro: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


class Recorder(asyncio.Transport):
    """The real transport, with each write call it receives written down."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self.transport, self.calls = transport, list[tuple[str, int]]()

    def write(self, data: Any) -> None:
        self.calls.append(("write", len(data)))
        self.transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        chunks = list(list_of_data)
        self.calls.append(("writelines", len(chunks)))
        self.transport.writelines(chunks)

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()


async def _pair() -> tuple[Recorder, CoalescingTransport, socket.socket]:
    """A coalescing transport over a real socket, and the socket at the other end."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    recorder = Recorder(transport)
    return recorder, CoalescingTransport(recorder, loop), theirs


async def _read_all(sock: socket.socket) -> bytes:
    loop, data = asyncio.get_running_loop(), b""
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10):
        data += chunk
    return data


@pytest.mark.parametrize("factory", _loops())
def test_the_writes_of_one_turn_leave_in_one_call_on_the_next(factory: LoopFactory) -> None:
    async def check() -> None:
        recorder, wire, theirs = await _pair()
        wire.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        wire.writelines([b"hel", memoryview(b"lo")])
        wire.write(b"")  # an empty write is no write
        assert recorder.calls == []  # nothing left in this turn
        assert wire.get_write_buffer_size() == 43
        await asyncio.sleep(0)
        assert recorder.calls == [("writelines", 3)]
        wire.write(b"next")
        await asyncio.sleep(0)
        assert recorder.calls[1:] == [("write", 4)]  # one piece: a plain write
        wire.close()
        assert await _read_all(theirs) == (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhellonext")
        theirs.close()

    run(factory, check())


@pytest.mark.parametrize("factory", _loops())
def test_close_sends_what_is_kept_first_and_abort_drops_it(factory: LoopFactory) -> None:
    async def check() -> None:
        _, wire, theirs = await _pair()
        wire.write(b"last words")
        wire.close()
        assert wire.is_closing()
        assert await _read_all(theirs) == b"last words"
        theirs.close()

        recorder, wire, theirs = await _pair()
        wire.write(b"never sent")
        wire.abort()
        await asyncio.sleep(0)  # the flush that was due finds nothing
        assert recorder.calls == []
        assert await _read_all(theirs) == b""
        theirs.close()

    run(factory, check())


@pytest.mark.parametrize("factory", _loops())
def test_a_large_body_is_not_held_back(factory: LoopFactory) -> None:
    """Past FLUSH_AT the write goes out at once, so uvicorn's flow control sees a full socket."""

    async def check() -> None:
        recorder, wire, theirs = await _pair()
        wire.write(b"head")
        wire.write(b"x" * FLUSH_AT)
        assert recorder.calls == [("writelines", 2)]
        wire.close()
        assert len(await _read_all(theirs)) == FLUSH_AT + 4
        theirs.close()

    run(factory, check())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers GET /n/<k> with k bytes, in chunks of 1000 for a streamed answer."""
    if scope["type"] == "lifespan":
        return
    size = int(scope["path"].rsplit("/", 1)[1])
    chunks = [b"a" * min(1000, size - at) for at in range(0, size, 1000)] or [b""]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for index, chunk in enumerate(chunks):
        more = index < len(chunks) - 1
        await send({"type": "http.response.body", "body": chunk, "more_body": more})


@pytest.mark.parametrize("factory", _loops())
def test_uvicorn_serves_keep_alive_pipelined_and_large_answers(factory: LoopFactory) -> None:
    async def check() -> None:
        port = free_port()
        config = uvicorn.Config(
            _app, port=port, http=CoalescingHttpToolsProtocol, log_config=None, lifespan="off"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                sizes = [0, 1, 1024, 5000, 3 * FLUSH_AT, 1 << 20]
                answers = await asyncio.gather(*(client.get(f"/n/{n}") for n in sizes * 5))
            assert [len(answer.content) for answer in answers] == sizes * 5
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /n/3 HTTP/1.1\r\nhost: x\r\n\r\n" * 2 + b"GET /n/2 HTTP/1.1\r\n")
            writer.write(b"host: x\r\nconnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 10)  # until the server closes
            assert data.count(b"HTTP/1.1 200 OK") == 3
            assert data.endswith(b"\r\n2\r\naa\r\n0\r\n\r\n")  # chunked: no content-length
            writer.close()
        finally:
            server.should_exit = True
            await serving

    run(factory, check())
