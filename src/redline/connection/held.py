"""Commands on a connection: `run_commands` (one pipeline) and `HeldConnection` (one
connection of the pool kept by a loop, its replies read straight into hiredis)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis
import redis.asyncio

from redline.connection.internals import reply_error, stream_transport
from redline.connection.kinds import AsyncClient, is_cluster_client

__all__ = ["Command", "HeldConnection", "reply_reader", "run_commands"]

Command = tuple[Any, ...]


async def run_commands(
    client: AsyncClient, commands: Sequence[Command], raise_on_error: bool = False
) -> list[Any]:
    """Run `commands` in one pipeline (one round trip on a single server); each result is the
    reply or the exception the command got (`raise_on_error`: the first exception is raised,
    once every reply is read)."""
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=raise_on_error))


class HeldConnection:
    """One connection of a client's pool, kept by a loop that makes one call at a time (a
    consumer's `ReliableQueue.pop_after`, the importer's push and reply loops): `run` writes a
    list of commands at once and reads their raw replies in order.

    Two costs of redis-py's asyncio path are left out. It checks a connection out of the pool
    for every call (a lock, a check for unread data, observability counters): about 300 of a
    consumer step's 750 µs on a 2-core VM. And it reads replies through a StreamReader, its
    parser and their checks: a PING cost 186 µs of client CPU that way, 122 µs with the replies
    fed from the socket straight into hiredis, as `_Replies` does (the connection is made,
    authenticated and closed by redis-py; only its reading is taken over). Any error but a
    command's own closes the connection, and the next `run` takes a fresh one; so does a `run`
    on a connection found dead while it was idle (the server restarted meanwhile: nothing was
    written on it, so the call goes to the fresh connection instead of failing). Closing the
    client closes it too. On a cluster client `run` is `run_commands`, whose replies go through
    redis-py's callbacks."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        # A client's kind does not change: looked at once, not per call (two frames a call).
        direct = not is_cluster_client(client)
        self._pool: Any = cast(redis.asyncio.Redis, client).connection_pool if direct else None
        self._connection: Any = None
        self._replies: _Replies | None = None

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The reply of each command, or the `ResponseError` it got."""
        if not commands:
            return []  # nothing to write, so no reply would ever come
        pool = self._pool
        if pool is None:  # a cluster client
            return await run_commands(self.client, commands)
        if self._replies is not None and self._replies.lost is not None:
            await self._drop(pool)  # it died while idle (a server restart): nothing sent on it
        if self._connection is None:
            connection = await pool.get_connection()
            self._connection, self._replies = connection, _Replies.take_over(connection)
        replies = self._replies
        assert replies is not None
        try:
            await replies.send(_packed(self._connection, commands), len(commands))
            return replies.replies
        except BaseException:  # timeouts, lost connections, cancellation midway: start over
            await self._drop(pool)
            raise

    async def _drop(self, pool: Any) -> None:
        """Close the held connection and give it back to `pool`; the next `run` takes another."""
        connection, self._connection, self._replies = self._connection, None, None
        await connection.disconnect()
        await pool.release(connection)


def _packed(connection: Any, commands: Sequence[Command]) -> list[bytes]:
    """The commands as the connection packs each (hiredis, for redline's clients), without
    redis-py's `pack_commands`, which re-buffers every piece in Python (a tenth of an asyncio
    enqueue's client CPU); the transport's `writelines` joins them."""
    if len(commands) == 1:
        packed: list[bytes] = connection.pack_command(*commands[0])  # (no `cast`: a frame)
        return packed
    return [piece for command in commands for piece in connection.pack_command(*command)]


def reply_reader(connection: Any) -> hiredis.Reader:
    """A hiredis reader that builds replies as redis-py's `connection` would: its errors, and
    its decoding when the client decodes responses."""
    options: dict[str, Any] = {
        "replyError": reply_error,
        "protocolError": redis.exceptions.InvalidResponse,
    }
    if connection.encoder.decode_responses:
        options["encoding"] = connection.encoder.encoding
        options["errors"] = connection.encoder.encoding_errors
    return hiredis.Reader(**options)


class _Replies(asyncio.Protocol):
    """The reading side of a held connection: bytes from the socket go straight into a hiredis
    reader, and `run` returns once the replies it waits for are complete."""

    def __init__(self, transport: asyncio.Transport, reader: hiredis.Reader, stream: Any) -> None:
        self.transport = transport
        # The loop the connection was made on, kept: `get_running_loop` makes a getpid system
        # call each time (on Python 3.11), and a held connection serves one loop only.
        self.loop = asyncio.get_running_loop()
        self.reader = reader
        self.stream = stream  # redis-py's protocol, told of the close it waits for
        self.replies: list[Any] = []
        self.wanted = 0
        self.waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None

    @classmethod
    def take_over(cls, connection: Any) -> _Replies:
        """Read `connection`'s replies from now on (it is idle: nothing is left unread)."""
        transport = stream_transport(connection)
        replies = cls(transport, reply_reader(connection), transport.get_protocol())
        transport.set_protocol(replies)
        return replies

    def send(self, data: list[bytes], wanted: int) -> asyncio.Future[None]:
        """Write `data`; the future is done once `wanted` replies are in `replies`. (A plain
        function returning the future, not a coroutine: one frame less per round trip.)"""
        if self.lost is not None:
            raise self.lost
        self.replies, self.wanted = [], wanted
        self.waiter = self.loop.create_future()
        self.transport.writelines(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while len(self.replies) < self.wanted:
                reply = self.reader.gets()
                if reply is False:
                    return
                if not isinstance(reply, hiredis.PushNotification):  # RESP3 out-of-band
                    self.replies.append(reply)
        except redis.exceptions.InvalidResponse as exc:  # not RESP: this link is done
            self._wake(exc)
            self.transport.close()
            return
        self._wake(None)

    def eof_received(self) -> bool:
        self._wake(redis.exceptions.ConnectionError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._wake(redis.exceptions.ConnectionError(f"connection lost: {exc or 'closed'}"))
        if self.stream is not None:
            self.stream.connection_lost(exc)
            self.stream = None

    def _wake(self, error: Exception | None) -> None:
        if error is not None and self.lost is None:
            self.lost = error
        if self.waiter is not None and not self.waiter.done():
            if error is None:
                self.waiter.set_result(None)
            else:
                self.waiter.set_exception(error)
