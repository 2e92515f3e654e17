"""Commands from many coroutines over one held connection, each round trip carrying every
command made while the one before it was in flight (auto-pipelining).

    reply = await batched(client).call(("EVALSHA", sha, 1, "key", "arg"))

For the producers' calls that are one command each (`enqueue`): redis-py's asyncio path
checks a connection out of the pool per call and reads its reply through a StreamReader
(`HeldConnection` says what that costs), about as much client CPU as the rest of an enqueue;
here a call is a future, and the replies come from hiredis. A coroutine that calls while
another's round trip is in flight waits for it and goes with the next one, so a hundred
concurrent producers make a few round trips, not a hundred. A command's own error
(`ResponseError`) is raised to its caller only; a lost connection to every caller of that
round trip (the next call takes a fresh connection). A caller cancelled while it waits does not
take its command back: like any command already written, it may have run. One `Batched` per
client and event loop (`batched` keeps them); on a cluster client, calls go through redis-py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from redline.connection.client import AsyncClient, Command, HeldConnection, is_cluster_client

__all__ = ["Batched", "batched"]


class Batched:
    """See the module docstring."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._held = HeldConnection(client)
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, command: Command) -> Any:
        """The reply of `command`, or the error it got."""
        if is_cluster_client(self.client):
            return await self.client.execute_command(*command)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((command, future))
        if self._sender is None:
            # A task of its own: a caller cancelled mid-round-trip must not take the others'
            # replies with it.
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    replies = await self._held.run([command for command, _ in batch])
                except Exception as exc:
                    _fail(batch, exc)
                    continue
                except BaseException:  # the loop is closing: nobody is left to answer
                    _fail(batch, RedisConnectionError("the event loop stopped mid-call"))
                    raise
                for (_, future), reply in zip(batch, replies, strict=True):
                    if not future.done():
                        _settle(future, reply)
        finally:
            self._sender = None


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


def _fail(batch: list[tuple[Command, asyncio.Future[Any]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


_ATTRIBUTE = "_redline_batched"


def batched(client: AsyncClient) -> Batched:
    """The `Batched` channel of `client` on the running loop, made on first use and kept on
    the client itself (a cache keyed by client would keep every client alive: the channel
    refers to it)."""
    loop = asyncio.get_running_loop()
    kept: tuple[asyncio.AbstractEventLoop, Batched] | None = vars(client).get(_ATTRIBUTE)
    if kept is None or kept[0] is not loop:  # a client used on another loop: a new channel
        kept = (loop, Batched(client))
        vars(client)[_ATTRIBUTE] = kept
    return kept[1]
