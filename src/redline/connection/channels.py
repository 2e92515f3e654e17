"""Fast paths for producers' one-command calls: `batched` (asyncio) and `held` (blocking).

    reply = await batched(client).call(("EVALSHA", sha, 1, "key", "arg"))
    reply = held(sync_client).call(("EVALSHA", sha, 1, "key", "arg"))

redis-py checks a connection out of its pool for every call (a lock or a queue, a check for
unread data, observability counters) and, on asyncio, reads the reply through a
StreamReader: for a one-script `enqueue` that was about as much client CPU as everything else
it does. Here:

- `Batched` (asyncio) writes over one `HeldConnection`, replies read by hiredis; a call made
  while a round trip is in flight goes with the next one (auto-pipelining), so a hundred
  concurrent producers make a few round trips, not a hundred.
- `Held` (blocking) keeps one connection of the pool per thread (and per process: a forked
  child takes its own) and writes and reads it directly.

A command's own error (`ResponseError`) is raised to its caller only. A lost connection is
closed and the call tried once more on a fresh one, as redis-py's own retry does (a command
written just before the connection broke may have run: at least once, as everywhere). Cluster
and Sentinel clients take redis-py's path (their connections follow the topology). The channel
is kept on the client object (a cache keyed by client would keep every client alive).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import hiredis
import redis
import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError

from redline.connection.held import Command, HeldConnection, reply_reader
from redline.connection.internals import command_packer, connected_socket
from redline.connection.kinds import AsyncClient, SyncClient, is_cluster_client

__all__ = ["Batched", "Held", "batched", "held"]

_SENTINEL_POOLS = (
    redis.asyncio.sentinel.SentinelConnectionPool,
    redis.sentinel.SentinelConnectionPool,
)


class _Process:
    """This process's id, kept (renewed in a forked child): `Held` compares it on every call,
    and `os.getpid()` is a system call each time (glibc caches no pid)."""

    pid = os.getpid()

    @classmethod
    def renew(cls) -> None:
        cls.pid = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_Process.renew)


def _direct(client: object) -> bool:
    """Whether `client`'s calls may go over a kept connection (not a cluster's or Sentinel's)."""
    pool = getattr(client, "connection_pool", None)
    return (
        pool is not None and not is_cluster_client(client) and not isinstance(pool, _SENTINEL_POOLS)
    )


class Batched:
    """See the module docstring. One per client and event loop (`batched`)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.direct = _direct(client)
        self._held = HeldConnection(client)
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._busy = False  # a round trip is in flight, or a task is about to make one
        self._sender: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly

    async def call(self, command: Command) -> Any:
        """The reply of `command`; raises the error it got."""
        if not self.direct:
            return await self.client.execute_command(*command)
        if self._busy:  # a round trip is in flight: go with the next one
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queued.append((command, future))
            return await future
        self._busy = True  # nothing in flight: this caller makes the round trip itself
        try:
            [reply] = await self._round_trip([command])
        finally:
            self._hand_over()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _hand_over(self) -> None:
        """After a round trip: the calls queued meanwhile go in a task of their own (a caller
        cancelled mid-round-trip must not take the others' replies with it)."""
        if self._queued:
            self._sender = asyncio.create_task(self._send())
        else:
            self._busy = False

    async def _send(self) -> None:
        batch, self._queued = self._queued, []
        try:
            replies = await self._round_trip([command for command, _ in batch])
        except Exception as exc:
            _fail(batch, exc)
        except BaseException:  # the loop is closing: nobody is left to answer
            _fail(batch, RedisConnectionError("the event loop stopped mid-call"))
            raise
        else:
            for (_, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    _settle(future, reply)
        finally:
            self._hand_over()

    async def _round_trip(self, commands: list[Command]) -> list[Any]:
        try:
            return await self._held.run(commands)
        except RedisConnectionError:  # closed, and the next run takes a fresh connection
            return await self._held.run(commands)


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


def _fail(batch: list[tuple[Command, asyncio.Future[Any]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


class Held:
    """See the module docstring. One per client (`held`); a connection per thread."""

    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self.direct = _direct(client)
        self._local = threading.local()

    def call(self, command: Command) -> Any:
        """The reply of `command`; raises the error it got."""
        if not self.direct:
            return self.client.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            return self._call(command)
        except RedisConnectionError:  # closed: the second try takes a fresh connection
            return self._call(command)

    def run(self, commands: Sequence[Command]) -> list[Any]:
        """The reply of each of `commands`, all written at once and read in order (one round
        trip; a command after a blocking one runs when it returns): each a value or the
        `ResponseError` that command got. A lost connection is closed and the commands tried
        once more on a fresh one, as `call` does."""
        if not self.direct:
            return [_reply_of(self.client, command) for command in commands]
        try:
            return self._run(commands)
        except RedisConnectionError:
            return self._run(commands)

    def _run(self, commands: Sequence[Command]) -> list[Any]:
        link = self._kept()
        try:
            link.send([piece for c in commands for piece in link.pack(*c)])
            return [link.read() for _ in commands]  # a command's ResponseError in its place
        except BaseException:
            self._drop(link)
            raise

    def calls(self, commands: Iterable[Command]) -> Iterator[Any]:
        """The replies of `commands`, in order, each command written before the reply of the
        one before is read: the server runs one while the next is made (`commands` may be a
        generator that makes them). No retry here: an error, a command's own included, drops
        the connection (replies may be unread on it) and is raised to the caller, the commands
        before it having run."""
        if not self.direct:
            for command in commands:
                yield self.client.execute_command(*command)  # type: ignore[no-untyped-call]
            return
        link, unread = self._kept(), 0
        try:
            for command in commands:
                link.send(link.pack(*command))
                unread += 1
                if unread == 2:
                    unread -= 1
                    yield _raised(link.read())
            if unread:
                yield _raised(link.read())
        except BaseException:  # GeneratorExit too: the caller stopped with replies unread
            self._drop(link)
            raise

    def _call(self, command: Command) -> Any:
        link = self._kept()
        try:
            link.send(link.pack(*command))
            reply = link.read()
        except BaseException:
            self._drop(link)
            raise
        if isinstance(reply, redis.exceptions.ResponseError):  # (not _raised: a frame less)
            raise reply  # the command's own error: the connection is fine
        return reply

    def _kept(self) -> _Link:
        """This thread's connection (taken from the pool on first use, and after a fork)."""
        link: _Link | None = getattr(self._local, "link", None)
        if link is None or link.pid != _Process.pid:  # a new thread, or a forked child
            connection = cast(redis.Redis, self.client).connection_pool.get_connection()
            link = self._local.link = _Link(connection)
        elif link.sock.fileno() < 0:  # closed meanwhile (the pool disconnected it): reopen it
            link = self._local.link = _Link(link.connection)
        return link

    def _drop(self, link: _Link) -> None:
        self._local.link = None
        link.connection.disconnect()
        cast(redis.Redis, self.client).connection_pool.release(link.connection)


def _raised(reply: Any) -> Any:
    if isinstance(reply, redis.exceptions.ResponseError):
        raise reply
    return reply


class _Link:
    """A kept connection, written and read on its socket directly: replies go from the socket
    straight into a hiredis reader of its own. redis-py's `send_packed_command` and
    `read_response` took about as much client CPU as the socket calls themselves (a held PING:
    ~40 µs of CPU that way, ~25 µs this way, on the 2-core VM; `bench queue_client`). Errors
    as redis-py raises them: a timeout `TimeoutError`, anything else of the socket's
    `ConnectionError` (the caller then drops the connection); a command's error is its reply."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.pack = command_packer(connection)  # (not its pack_command: one frame less a call)
        self.pid = _Process.pid
        self.sock = connected_socket(connection)
        self.reader = reply_reader(connection)
        self.buffer = bytearray(65536)

    def send(self, pieces: list[bytes]) -> None:
        try:
            self.sock.sendall(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        except OSError as exc:
            raise _link_error(exc, "writing to") from exc

    def read(self) -> Any:
        """The next reply (a `ResponseError` is returned, not raised); RESP3 pushes skipped.
        An error reply redis-py counts as a connection's (``LOADING``, ``NOAUTH``: its
        `ConnectionError`s) is raised, as redis-py's own read raises it."""
        reader = self.reader
        reply = reader.gets()
        while reply is False or isinstance(reply, hiredis.PushNotification):
            if reply is False:  # (the socket read here, not in a method: a frame less a call)
                try:
                    got = self.sock.recv_into(self.buffer)
                except OSError as exc:
                    raise _link_error(exc, "reading from") from exc
                if not got:
                    raise RedisConnectionError("the server closed the connection")
                reader.feed(self.buffer, 0, got)  # type: ignore[arg-type]  # (any buffer)
            reply = reader.gets()
        if isinstance(reply, RedisConnectionError):
            raise reply
        if type(reply) is list and reply and isinstance(reply[0], RedisConnectionError):
            raise reply[0]
        return reply


def _link_error(exc: OSError, doing: str) -> redis.exceptions.RedisError:
    if isinstance(exc, TimeoutError) and exc.errno is None:  # the socket's timeout
        return redis.exceptions.TimeoutError(f"Timeout {doing} the socket")
    return RedisConnectionError(f"Error {doing} the socket: {exc!r}")


def _reply_of(client: SyncClient, command: Command) -> Any:
    """`command`'s reply over redis-py's own path, or the `ResponseError` it got."""
    try:
        return client.execute_command(*command)  # type: ignore[no-untyped-call]
    except redis.exceptions.ResponseError as exc:
        return exc


def batched(client: AsyncClient) -> Batched:
    """The `Batched` channel of `client` on the running loop (made on first use)."""
    loop = asyncio.get_running_loop()
    kept: tuple[asyncio.AbstractEventLoop, Batched] | None = vars(client).get("_redline_batched")
    if kept is None or kept[0] is not loop:  # a client used on another loop: a new channel
        kept = (loop, Batched(client))
        vars(client)["_redline_batched"] = kept
    return kept[1]


def held(client: SyncClient) -> Held:
    """The `Held` channel of `client` (made on first use)."""
    found: Held | None = vars(client).get("_redline_held")
    if found is None:
        found = vars(client)["_redline_held"] = Held(client)
    return found
