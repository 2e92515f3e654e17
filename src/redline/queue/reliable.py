"""The asyncio ReliableQueue: every operation is one Lua script over the keys of one queue.

The waiting list holds plain payloads (any client may LPUSH or RPOP it); ids, leases, delivery
counts, delayed retries and dead letters live in keys beside it (`QueueKeys`). The design, the
key layout and the scripts' arguments are in docs/queue.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import RedisCluster

from redline import scripts
from redline.backoff import delay_for
from redline.connection import AsyncClient
from redline.errors import QueueError
from redline.queue.leases import LeaseKeeper
from redline.queue.model import Delivery, MessageState, QueuedMessage, QueueInfo, QueueKeys

__all__ = ["BATCH", "ReliableQueue"]

log = logging.getLogger(__name__)

BATCH = 1000  # messages per script call, far below Lua's limit on unpack()
T = TypeVar("T")
_VIEWS = (MessageState.INFLIGHT, MessageState.DELAYED, MessageState.DEAD)  # queue_view's ARGV[3]


@functools.lru_cache(maxsize=4096)
def _keys(name: str) -> QueueKeys:
    return QueueKeys.of(name)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise QueueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _longest_block(client: AsyncClient) -> float:
    """Seconds one BLMOVE may block: it must answer within the client's socket timeout
    (redis-py's default is 5 s), and servers time blocked clients out up to ~100 ms late."""
    timeout = _socket_timeout(client)
    if timeout is None:
        return 3600.0
    return timeout - 0.5 if timeout > 1 else timeout / 4


def _socket_timeout(client: AsyncClient) -> float | None:
    if isinstance(client, RedisCluster):
        kwargs = client.connection_kwargs
    else:
        kwargs = client.connection_pool.connection_kwargs
    value = kwargs.get("socket_timeout")
    return float(value) if value else None


def _count(count: int) -> None:
    if not isinstance(count, int) or count < 1:
        raise QueueError(f"count must be an integer >= 1, got {count!r}")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _chunks(items: Sequence[T], size: int = BATCH) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _by_key(deliveries: Iterable[Delivery]) -> dict[str, list[Delivery]]:
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(delivery.key, []).append(delivery)
    return groups


def _tokens(deliveries: Iterable[Delivery]) -> list[str | int]:
    return [x for d in deliveries for x in (d.id, d.deliveries)]


def _payload(value: object) -> bytes | str:
    if isinstance(value, bytes | str):
        return value
    raise QueueError(f"a payload must be bytes or str, got {type(value).__name__}: {value!r:.60}")


class ReliableQueue:
    """At-least-once queues: push, pop with leases, ack with fencing, retries, dead letters.

    `lease`: seconds a delivery is owned before it may be recovered and redelivered.
    `max_deliveries`: a message given back (nack, expired lease) after this many deliveries goes
    to the dead letters. `retry_base`/`retry_cap`: the backoff of `nack(delay=None)`. `poll`:
    when `pop` blocks on several keys it waits on the first one at most this long per round, so
    the others are looked at that often.
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
    ) -> None:
        if client.get_encoder().decode_responses:
            raise QueueError(
                "the Redis client decodes responses, but payloads are bytes: "
                "create it without decode_responses=True"
            )
        if not isinstance(max_deliveries, int) or max_deliveries < 1:
            raise QueueError(f"max_deliveries must be an integer >= 1, got {max_deliveries!r}")
        self.client = client
        self.lease = _seconds("lease", lease)
        self.max_deliveries = max_deliveries
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.retry_base = _seconds("retry_base", retry_base)
        self.retry_cap = _seconds("retry_cap", retry_cap)
        self.poll = _seconds("poll", poll)
        self._longest_block = _longest_block(client)

    async def _run(self, script: str, key: str, args: Sequence[Any] = ()) -> Any:
        """Run `script` on the keys of queue `key` (SCRIPT_KEYS says which, in which order)."""
        return await scripts.run(self.client, script, _keys(key).of_script(script), args)

    # -- producing ---------------------------------------------------------------------------

    async def push(self, key: str, *payloads: bytes | str) -> list[str]:
        """LPUSH `payloads` (oldest first) onto `key`, in one round trip; returns their ids."""
        checked = [_payload(p) for p in payloads]
        ids: list[str] = []
        for chunk in _chunks(checked):
            reply = await self._run("queue_push", key, chunk)
            ids += [_text(i) for i in reply]
        return ids

    # -- consuming ---------------------------------------------------------------------------

    async def pop(self, *keys: str, count: int = 1, block: float | None = None) -> list[Delivery]:
        """Up to `count` deliveries, from `keys` in order (the first key has priority).

        `block` None or 0: return at once, maybe []. Else wait up to `block` seconds for at least
        one message. Expired leases of these keys are recovered on the way.
        """
        if not keys:
            raise QueueError("pop needs at least one queue key")
        _count(count)
        loop = asyncio.get_running_loop()
        until = None if not block else loop.time() + _seconds("block", block)
        while True:
            batch, wait = await self._take(keys, count)
            if batch or until is None:
                return batch
            left = until - loop.time()
            if left <= 0:
                return []
            await self._block(keys[0], min(left, wait))

    async def _take(self, keys: Sequence[str], count: int) -> tuple[list[Delivery], float]:
        """One non-blocking pass over `keys`; also the seconds until something is scheduled."""
        batch: list[Delivery] = []
        wait = math.inf if len(keys) == 1 else self.poll
        for key in keys:
            if len(batch) >= count:
                break
            got, next_event = await self._take_key(key, count - len(batch))
            batch += got
            wait = min(wait, next_event)
        return batch, wait

    async def _take_key(self, key: str, count: int) -> tuple[list[Delivery], float]:
        got, due, expires = await self._pop_script(key, count)
        if len(got) < count and expires == 0:
            await self.recover(key, count=count - len(got))
            more, due, expires = await self._pop_script(key, count - len(got))
            got += more
        waits = [w / 1000 for w in (due, expires) if w >= 0]
        return got, min(waits, default=math.inf)

    async def _pop_script(self, key: str, count: int) -> tuple[list[Delivery], int, int]:
        got: list[Delivery] = []
        while True:
            want = min(count - len(got), BATCH)
            due, expires, *flat = await self._run("queue_pop", key, [want, _ms(self.lease)])
            got += [
                Delivery(key, _text(flat[i]), flat[i + 1], int(flat[i + 2]))
                for i in range(0, len(flat), 3)
            ]
            if len(flat) < 3 * want or len(got) >= count:
                return got, int(due), int(expires)

    async def _block(self, key: str, seconds: float) -> None:
        # BLMOVE into the shared claim list: if this process dies right after, the next pop
        # of any consumer claims the message, so nothing waits in limbo.
        k = _keys(key)
        timeout = max(0.01, min(seconds, self._longest_block))
        # redis-py types the timeout as int; the server takes decimal seconds (Redis 6+).
        await self.client.blmove(k.waiting, k.claimed, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]

    # -- settling ----------------------------------------------------------------------------

    async def ack(self, *deliveries: Delivery) -> list[str]:
        """Acknowledge `deliveries`; returns the ids acknowledged. A stale delivery (recovered
        and redelivered since, or dead-lettered) is refused: its id is not in the result."""
        acked: list[str] = []
        for key, group in _by_key(deliveries).items():
            for chunk in _chunks(group):
                acked += [_text(i) for i in await self._run("queue_ack", key, _tokens(chunk))]
        if len(acked) < len(deliveries):
            done = set(acked)
            stale = [f"{d.key}/{d.id}" for d in deliveries if d.id not in done]
            log.warning("ack refused (stale or unknown) messages=%s", ",".join(stale))
        return acked

    async def nack(self, delivery: Delivery, delay: float | None = None, reason: str = "") -> bool:
        """Give `delivery` back for a retry after `delay` seconds (None: exponential backoff
        with jitter from its delivery count); past `max_deliveries` it is dead-lettered with
        `reason`. False when the delivery is stale (the message is no longer its to give)."""
        if delay is None:
            delay = delay_for(delivery.deliveries, self.retry_base, self.retry_cap)
        elif not isinstance(delay, int | float) or delay < 0:
            raise QueueError(f"delay must be seconds >= 0 or None, got {delay!r}")
        return await self._give_back(delivery, delay, reason, "retry")

    async def dead_letter(self, delivery: Delivery, reason: str = "") -> bool:
        """Send `delivery` straight to the dead letters with `reason`; False when stale."""
        return await self._give_back(delivery, 0, reason, "dead")

    async def _give_back(self, delivery: Delivery, delay: float, reason: str, mode: str) -> bool:
        args = [delivery.id, delivery.deliveries, _ms(delay), self.max_deliveries, reason, mode]
        outcome = int(await self._run("queue_nack", delivery.key, args))
        if outcome == 2:
            log.warning("dead letter queue=%s id=%s reason=%r", delivery.key, delivery.id, reason)
        elif outcome == 0:
            log.warning("nack refused (stale) queue=%s id=%s", delivery.key, delivery.id)
        return outcome != 0

    async def extend(self, *deliveries: Delivery, lease: float | None = None) -> list[Delivery]:
        """Renew the leases of `deliveries` (to `lease` seconds, default the queue's); returns
        those still held. One missing from the result was recovered or settled meanwhile."""
        lease_ms = _ms(self.lease if lease is None else _seconds("lease", lease))
        kept: list[Delivery] = []
        for key, group in _by_key(deliveries).items():
            for chunk in _chunks(group):
                reply = await self._run("queue_extend", key, [lease_ms, *_tokens(chunk)])
                ids = {_text(i) for i in reply}
                kept += [d for d in chunk if d.id in ids]
        return kept

    def keep_leases(
        self, deliveries: Sequence[Delivery], every: float | None = None
    ) -> LeaseKeeper:
        """``async with queue.keep_leases(batch) as keeper:`` extends the leases every
        `every` seconds (default a third of the lease) while the block runs; `keeper.lost`
        lists deliveries whose lease was lost."""
        return LeaseKeeper(self, deliveries, _seconds("every", every or self.lease / 3))

    async def recover(self, key: str, count: int = 100, elapsed: float | None = None) -> int:
        """Give back up to `count` in-flight messages of `key` whose lease has expired (or,
        with `elapsed`, that were delivered at least `elapsed` seconds ago) for redelivery;
        those past `max_deliveries` go to the dead letters. Returns how many moved."""
        _count(count)
        limit = -1 if elapsed is None else _ms(elapsed)
        args = [count, limit, self.max_deliveries]
        requeued, dead = await self._run("queue_recover", key, args)
        if requeued or dead:
            log.info("recovered queue=%s requeued=%d dead=%d", key, requeued, dead)
        return int(requeued) + int(dead)

    # -- operating ---------------------------------------------------------------------------

    async def info(self, key: str) -> QueueInfo:
        """The counts of `key`: waiting, in flight, delayed, dead, expired leases."""
        reply = await self._run("queue_info", key)
        return QueueInfo(key, *(int(n) for n in reply))

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
        if pending:
            return await self._view(key, MessageState.INFLIGHT, start, count)
        if delayed:
            return await self._view(key, MessageState.DELAYED, start, count)
        flat = await self._run("queue_waiting", key, [start, count])
        return [
            QueuedMessage(key, _text(flat[i]), flat[i + 1], MessageState.WAITING)
            for i in range(0, len(flat), 2)
        ]

    async def dead(self, key: str, start: int = 0, count: int = 100) -> list[QueuedMessage]:
        """A page of `key`'s dead letters, oldest first, with the reason each died."""
        return await self._view(key, MessageState.DEAD, start, count)

    async def _view(
        self, key: str, state: MessageState, start: int, count: int
    ) -> list[QueuedMessage]:
        which = _VIEWS.index(state) + 1
        now, *flat = await self._run("queue_view", key, [start, count, which])
        return [_viewed(key, state, int(now), flat[i : i + 6]) for i in range(0, len(flat), 6)]

    async def purge(self, key: str) -> int:
        """Drop every waiting and delayed message of `key` (in-flight ones and dead letters
        stay); returns how many were dropped."""
        return int(await self._run("queue_purge", key))

    async def requeue(self, key: str, *ids: str) -> int:
        """Give dead letters `ids` of `key` another life (due now, delivery count reset)."""
        return sum([int(await self._run("queue_requeue", key, c)) for c in _chunks(ids)])

    async def delete(self, key: str, *ids: str) -> int:
        """Remove dead letters `ids` of `key` for good; returns how many were deleted."""
        return sum([int(await self._run("queue_delete", key, c)) for c in _chunks(ids)])


def _viewed(key: str, state: MessageState, now: int, row: Sequence[Any]) -> QueuedMessage:
    mid, payload, deliveries, score, since, reason = row
    elapsed: float | None = None
    remaining: float | None = None
    if state is MessageState.INFLIGHT:
        elapsed, remaining = (now - int(since)) / 1000, (int(score) - now) / 1000
    elif state is MessageState.DELAYED:
        remaining = (int(score) - now) / 1000
    else:
        elapsed = (now - int(score)) / 1000
    return QueuedMessage(
        key, _text(mid), payload, state, int(deliveries), elapsed, remaining, _text(reason)
    )
