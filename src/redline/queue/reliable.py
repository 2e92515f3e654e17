"""The asyncio ReliableQueue: every operation is one server-side function over one queue's keys.

The waiting list holds plain payloads (any client may LPUSH or RPOP it); ids, leases, delivery
counts, delayed retries and dead letters live in keys beside it (`QueueKeys`). The logic is in
`redline.queue.core` (shared with `SyncReliableQueue`); this class only performs its calls. The
design, the key layout and the functions' arguments are in docs/queue.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import RedisCluster
from redis.exceptions import OutOfMemoryError

from redline.connection import AsyncClient, Command, HeldConnection, SyncClient, longest_block
from redline.errors import QueueError, ServerFullError
from redline.queue.core import (
    Block,
    Call,
    QueueCore,
    Steps,
    check_wait,
    keys_of,
    positive_seconds,
)
from redline.queue.leases import LeaseKeeper
from redline.queue.library import pipelined, run_async
from redline.queue.model import DEAD_AGE, DEAD_MAX, Delivery, Holder, QueuedMessage, QueueInfo
from redline.queue.replicated import checked_reply, push_on_cluster
from redline.scripting import scripts

__all__ = ["ReliableQueue", "check_client"]


def check_client(client: AsyncClient | SyncClient) -> None:
    """Refuse a client that decodes responses (payloads are bytes)."""
    if client.get_encoder().decode_responses:
        raise QueueError(
            "the Redis client decodes responses, but payloads are bytes: "
            "create it without decode_responses=True"
        )


class ReliableQueue(QueueCore):
    """At-least-once queues: push, pop with leases, ack with fencing, retries, dead letters.

    `lease`: seconds a delivery is owned before it may be recovered and redelivered.
    `max_deliveries`: a message given back (nack, expired lease) after this many deliveries goes
    to the dead letters. `retry_base`/`retry_cap`: the backoff of `nack(delay=None)`. `poll`:
    when `pop` blocks on several keys it waits on the first one at most this long per round, so
    the others are looked at that often. `use_functions=False` runs the scripts with EVALSHA even
    where the server has Redis Functions.
    """

    def __init__(
        self,
        client: AsyncClient,
        lease: float = 30.0,
        max_deliveries: int = 10,
        consumer: str | None = None,
        *,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        poll: float = 0.5,
        use_functions: bool = True,
    ) -> None:
        check_client(client)
        retry = (retry_base, retry_cap)
        super().__init__(lease, max_deliveries, consumer, retry, poll, longest_block(client))
        self.client = client
        self.use_functions = use_functions
        self._held = HeldConnection(client)  # pop_after's
        self._held_lock = asyncio.Lock()

    async def _drive(
        self,
        steps: Steps[Any],
        client: AsyncClient | None = None,
        reply: Any = None,
        held: bool = False,
    ) -> Any:
        """Perform `steps` (a `QueueCore` generator) until it returns; `reply` answers the step
        it last yielded (None: it has not started). `held`: over `pop_after`'s connection."""
        try:
            while True:
                step = steps.send(reply)
                if held and isinstance(step, Block):  # the call after it goes with it
                    reply = await self._held_block(step, cast(Call, steps.send(None)))
                else:
                    reply = await (self._held_step(step) if held else self._step(step, client))
        except StopIteration as done:
            return done.value

    async def _step(self, step: Call | Block, client: AsyncClient | None = None) -> Any:
        if isinstance(step, Call):
            return await run_async(client or self.client, step, self.use_functions)
        return await self._block(step)

    async def _held_step(self, step: Call | Block) -> Any:
        """`step` over the held connection (only driven where calls are plain FCALLs)."""
        if isinstance(step, Block):
            command: Command | None = step.command
        else:
            command = pipelined(self.client, step, self.use_functions)
        if command is None:
            return await self._step(step)
        [reply] = await self._held.run([command])
        return await self._settled(step, reply)

    async def _held_block(self, block: Block, then: Call) -> Any:
        """`block`'s BLMOVE and `then` in one round trip over the held connection (see
        `Block`); `then`'s reply."""
        command = pipelined(self.client, then, self.use_functions)
        if command is None:
            await self._step(block)
            return await self._step(then)
        moved, reply = await self._held.run([block.command, command])
        if isinstance(moved, Exception):
            raise moved
        return await self._settled(then, reply)

    async def _settled(self, step: Call | Block, reply: Any) -> Any:
        """`reply`, or `step` again through `_step` when the held connection's attempt got an
        error (e.g. a restarted server without the library: `_step` loads it)."""
        return await self._step(step) if isinstance(reply, Exception) else reply

    async def _block(self, step: Block) -> Any:
        # BLMOVE into the shared claim list: if this process dies right after, the next pop
        # of any consumer claims the message, so nothing waits in limbo.
        return await self.client.execute_command(*step.command)

    async def push(
        self,
        key: str,
        *payloads: bytes | str,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> list[str]:
        """LPUSH `payloads` (oldest first) onto `key`, in one round trip; returns their ids.

        Raises `ServerFullError` when the server is out of memory (maxmemory, noeviction).
        `wait_replicas`: then ``WAIT`` until that many replicas have the push, at most
        `wait_timeout` seconds; fewer raise `ReplicationError` (docs/guarantees.md).
        """
        ms = check_wait(wait_replicas, wait_timeout, self.longest_block)
        ids: list[str] = []
        try:
            if wait_replicas:
                await self._push_replicated(key, payloads, ids, wait_replicas, ms)
            else:
                await self._drive(self._push(key, payloads, ids))
        except OutOfMemoryError:
            raise ServerFullError(key, ids, len(payloads) - len(ids)) from None
        return ids

    async def _push_replicated(
        self, key: str, payloads: Sequence[object], ids: list[str], replicas: int, ms: int
    ) -> None:
        # WAIT counts the writes of its own connection: each chunk's push and its WAIT go in one
        # pipeline (so on one connection), as EVALSHA of the same script the function runs; on
        # a cluster, to the master owning the queue's slot (redline.queue.replicated).
        steps, reply = self._push(key, payloads, ids), None
        with contextlib.suppress(StopIteration):
            while True:
                call = cast(Call, steps.send(reply))  # _push only calls, never blocks
                results = await self._with_wait(call, replicas, ms)
                reply = checked_reply(key, ids, results, replicas)

    async def _with_wait(self, call: Call, replicas: int, ms: int) -> list[Any]:
        if isinstance(self.client, RedisCluster):
            return await push_on_cluster(self.client, call, replicas, ms)
        async with self.client.pipeline(transaction=False) as pipe:
            keys = keys_of(call.key).of_script(call.script)
            await scripts.run(cast(Any, pipe), call.script, keys, call.args)
            pipe.wait(replicas, ms)
            return list(await pipe.execute())

    async def pop(
        self,
        *keys: str,
        count: int = 1,
        block: float | None = None,
        ack: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """Up to `count` deliveries, from `keys` in order (the first key has priority).

        `block` None or 0: return at once, maybe []. Else wait up to `block` seconds for at least
        one message. Expired leases of these keys are given back by every pop (of any consumer),
        ahead of fresh messages, so they are redelivered within one pop after they expire
        (docs/queue.md, "Recovery"). `ack`: deliveries
        to acknowledge first, in the same round trip (a steady consumer's loop:
        ``batch = await queue.pop(key, count=100, block=5, ack=batch)``).
        """
        result: list[Delivery] = await self._drive(self._pop(keys, count, block, ack))
        return result

    async def pop_after(
        self,
        commands: Sequence[Command],
        *keys: str,
        count: int = 1,
        block: float | None = None,
        ack: Sequence[Delivery] = (),
    ) -> tuple[list[Any], list[Delivery]]:
        """Run `commands` (any Redis commands, such as the LPUSHes that answer the last batch),
        then `pop`, in one round trip: a steady consumer's whole step. Returns the commands'
        results, each a value or the exception it raised, and the deliveries.

        The commands run before the pop (and its `ack`), in order, but not atomically with it:
        ack in this call only what an earlier call's commands have settled, as in
        ``results, batch = await queue.pop_after(answers, key, count=64, block=1, ack=done)``.
        The round trip goes over a connection this queue keeps for its steps (one
        `pop_after` runs at a time per queue object; see `HeldConnection`). On a cluster, or
        before the queue's functions are loaded, the commands and the pop are two round trips.
        """
        steps = self._pop(keys, count, block, ack)
        first = cast(Call, steps.send(None))  # a pop's first step is always a call
        call = pipelined(self.client, first, self.use_functions)
        async with self._held_lock:  # one pop at a time on the held connection
            if call is None:
                results = await self._held.run(commands)
                return results, await self._drive(steps, reply=await self._step(first))
            results = await self._held.run([*commands, call])
            reply = await self._settled(first, results.pop())
            return results, await self._drive(steps, reply=reply, held=True)

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """Run `commands` (any Redis commands) in one round trip over the connection
        `pop_after` keeps, without a pop; each result is a value or the exception it raised.
        For a consumer whose step sometimes only answers, as in
        ``results = await queue.send(answers)``: its sends and its pops then share one
        connection (one server client per consumer, not two)."""
        async with self._held_lock:
            return await self._held.run(commands)

    async def ack(self, *deliveries: Delivery) -> list[str]:
        """Acknowledge `deliveries`; returns the ids acknowledged. A stale delivery (recovered
        and redelivered since, or dead-lettered) is refused: its id is not in the result."""
        result: list[str] = await self._drive(self._ack(deliveries))
        return result

    async def nack(self, delivery: Delivery, delay: float | None = None, reason: str = "") -> bool:
        """Give `delivery` back for a retry after `delay` seconds (None: exponential backoff
        with jitter from its delivery count); past `max_deliveries` it is dead-lettered with
        `reason`. False when the delivery is stale (the message is no longer its to give)."""
        return bool(await self._drive(self._nack(delivery, delay, reason)))

    async def dead_letter(self, delivery: Delivery, reason: str = "") -> bool:
        """Send `delivery` straight to the dead letters with `reason`; False when stale."""
        return bool(await self._drive(self._give_back(delivery, 0, reason, "dead")))

    async def extend(self, *deliveries: Delivery, lease: float | None = None) -> list[Delivery]:
        """Renew the leases of `deliveries` (to `lease` seconds, default the queue's); returns
        those still held. One missing from the result was recovered or settled meanwhile."""
        result: list[Delivery] = await self._drive(self._extend(deliveries, lease))
        return result

    def keep_leases(
        self, deliveries: Sequence[Delivery], every: float | None = None
    ) -> LeaseKeeper:
        """``async with queue.keep_leases(batch) as keeper:`` extends the leases every
        `every` seconds (default a third of the lease) while the block runs; `keeper.lost`
        lists deliveries whose lease was lost."""
        return LeaseKeeper(self, deliveries, positive_seconds("every", every or self.lease / 3))

    async def recover(self, key: str, count: int = 100, elapsed: float | None = None) -> int:
        """Give back up to `count` in-flight messages of `key` whose lease has expired (or,
        with `elapsed`, that were delivered at least `elapsed` seconds ago) for redelivery;
        those past `max_deliveries` go to the dead letters. Returns how many moved."""
        return int(await self._drive(self._recover(key, count, elapsed)))

    async def holders(self, key: str) -> list[Holder]:
        """Who holds `key`'s in-flight messages (the `consumer` of the queue object that popped
        them), oldest lease first; those whose consumer is not known are under ""."""
        result: list[Holder] = await self._drive(self._holders(key))
        return result

    async def release(self, key: str, *consumers: str) -> int:
        """Give back for redelivery, whatever their lease, the in-flight messages of `key`
        that `consumers` hold (see `holders`): for consumers known to be gone. Those past
        `max_deliveries` go to the dead letters. Returns how many moved. A consumer still
        alive loses them: they are delivered again, and its acks are refused from then on
        (an ack that comes before their next delivery settles them, as for an expired
        lease)."""
        return int(await self._drive(self._release(key, consumers)))

    async def info(self, key: str) -> QueueInfo:
        """The counts of `key`: waiting, in flight, delayed, dead, expired leases; and its
        dead-letter retention with what it dropped."""
        result: QueueInfo = await self._drive(self._info(key))
        return result

    async def set_retention(
        self, key: str, entries: int = DEAD_MAX, age: float = DEAD_AGE
    ) -> tuple[int, float]:
        """Keep at most `entries` dead letters of `key`, none older than `age` seconds (also
        the bounds of the jobs layer's failure records of the queue). Stored beside the queue,
        so every consumer and language applies it; the oldest past either bound are dropped
        (and counted, see `info`) the next time a dead letter is added. The defaults are
        those in force when none was set. Returns (entries, age) as now in force."""
        result: tuple[int, float] = await self._drive(self._set_retention(key, entries, age))
        return result

    async def inspect(
        self,
        key: str,
        pending: bool = False,
        start: int = 0,
        count: int = 100,
        *,
        delayed: bool = False,
    ) -> list[QueuedMessage]:
        """A page of `key`'s waiting messages in delivery order; with `pending`, of its
        in-flight ones (soonest lease end first); with `delayed`, of its delayed ones."""
        result: list[QueuedMessage] = await self._drive(
            self._inspect(key, pending, start, count, delayed)
        )
        return result

    async def dead(self, key: str, start: int = 0, count: int = 100) -> list[QueuedMessage]:
        """A page of `key`'s dead letters, oldest first, with the reason each died."""
        result: list[QueuedMessage] = await self._drive(self._dead(key, start, count))
        return result

    async def purge(self, key: str) -> int:
        """Drop every waiting and delayed message of `key` (in-flight ones and dead letters
        stay); returns how many were dropped."""
        return int(await self._drive(self._purge(key)))

    async def requeue(self, key: str, *ids: str, everything: bool = False) -> int:
        """Give dead letters `ids` of `key` (or, with `everything`, all of them) another life:
        due now, delivery count reset. Returns how many were requeued."""
        return int(await self._drive(self._settle_dead("queue_requeue", key, ids, everything)))

    async def delete(self, key: str, *ids: str, everything: bool = False) -> int:
        """Remove dead letters `ids` of `key` (or, with `everything`, all of them) for good;
        returns how many were deleted."""
        return int(await self._drive(self._settle_dead("queue_delete", key, ids, everything)))
