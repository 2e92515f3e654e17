"""The ReliableQueue's logic without I/O, shared by the asyncio and the blocking classes.

Each operation is a generator that yields the server calls it needs (`Call`: run one queue
script; `Block`: wait on a queue with BLMOVE) and receives their replies; `ReliableQueue` drives
it with `await`, `SyncReliableQueue` with plain calls. So checking arguments, building KEYS and
ARGV, parsing replies, batching and the blocking pop's rounds exist once.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from redline.backoff import delay_for
from redline.connection import text
from redline.errors import QueueError
from redline.queue.model import (
    Delivery,
    Holder,
    MessageState,
    QueuedMessage,
    QueueInfo,
    QueueKeys,
)
from redline.queue.replies import (
    ack_args,
    deliveries_of,
    in_order,
    pushed_ids,
    take_acked,
    tokens,
    viewed,
    warn_refused,
)

__all__ = [
    "BATCH",
    "Block",
    "Call",
    "QueueCore",
    "Steps",
    "check_wait",
    "keys_of",
    "positive_seconds",
]

log = logging.getLogger("redline.queue")

BATCH = 1000  # messages per script call, far below Lua's limit on unpack()
T = TypeVar("T")
_VIEWS = (MessageState.INFLIGHT, MessageState.DELAYED, MessageState.DEAD)  # queue_view's ARGV[3]


class Call(msgspec.Struct, frozen=True):
    """Run queue script `script` on the keys of queue `key` with `args`. (A msgspec struct:
    made for every server call, in a sixth of a frozen dataclass's time.)"""

    script: str
    key: str
    args: Sequence[Any] = ()


@dataclass(frozen=True)
class Block:
    """BLMOVE from queue `key` into its claim list, waiting up to `seconds`. Its reply is not
    looked at, and the step after it is always a `Call` (the pop that claims what arrived): a
    driver may send the two in one round trip (the server runs the call once the BLMOVE
    returns), answering the Block with None, as the blocking class and `pop_after` do."""

    key: str
    seconds: float

    @property
    def command(self) -> tuple[Any, ...]:
        """The BLMOVE (the server takes the timeout in decimal seconds, Redis 6+)."""
        k = keys_of(self.key)
        return ("BLMOVE", k.waiting, k.claimed, "RIGHT", "LEFT", self.seconds)


Steps = Generator[Call | Block, Any, T]


@functools.lru_cache(maxsize=4096)
def keys_of(name: str) -> QueueKeys:
    """The keys of queue `name` (cached: building them hashes the name)."""
    return QueueKeys.of(name)


def positive_seconds(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise QueueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _count(count: int) -> None:
    if not isinstance(count, int) or count < 1:
        raise QueueError(f"count must be an integer >= 1, got {count!r}")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _sooner(wait: float, *scheduled_ms: int) -> float:
    """`wait`, or the seconds until the soonest of `scheduled_ms` (-1: nothing) if sooner."""
    for ms in scheduled_ms:
        if ms >= 0:
            wait = min(wait, ms / 1000)
    return wait


def _chunks(items: Sequence[T], size: int = BATCH) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _by_key(deliveries: Sequence[Delivery]) -> dict[str, list[Delivery]]:
    if not deliveries:
        return {}
    key = deliveries[0].key
    if len(deliveries) == 1 or all(d.key == key for d in deliveries):  # the usual case, fast
        return {key: list(deliveries)}
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(delivery.key, []).append(delivery)
    return groups


def _not_a_payload(value: object) -> QueueError:
    return QueueError(f"a payload must be bytes or str, got {type(value).__name__}: {value!r:.60}")


class QueueCore:
    """Settings and the operations as generators of server calls (see the module docstring).

    `lease`: seconds a delivery is owned before it may be recovered and redelivered.
    `max_deliveries`: a message given back (nack, expired lease) after this many deliveries goes
    to the dead letters. `retry_base`/`retry_cap`: the backoff of `nack(delay=None)`. `poll`:
    when `pop` blocks on several keys it waits on the first one at most this long per round, so
    the others are looked at that often. `longest_block`: the most one BLMOVE may wait (below
    the client's socket timeout).
    """

    def __init__(
        self,
        lease: float,
        max_deliveries: int,
        consumer: str | None,
        retry: tuple[float, float],
        poll: float,
        longest_block: float,
    ) -> None:
        if not isinstance(max_deliveries, int) or max_deliveries < 1:
            raise QueueError(f"max_deliveries must be an integer >= 1, got {max_deliveries!r}")
        self.lease = positive_seconds("lease", lease)
        self.max_deliveries = max_deliveries
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.retry_base = positive_seconds("retry_base", retry[0])
        self.retry_cap = positive_seconds("retry_cap", retry[1])
        self.poll = positive_seconds("poll", poll)
        self.longest_block = longest_block

    # -- producing ---------------------------------------------------------------------------

    def _push(
        self, key: str, payloads: Sequence[object], ids: list[str] | None = None
    ) -> Steps[list[str]]:
        """Push in chunks; `ids` (when given) holds the ids of the chunks stored so far, so a
        caller whose push failed midway knows what was stored."""
        for p in payloads:  # (checked in this loop: no call per payload)
            if not isinstance(p, bytes | str):
                raise _not_a_payload(p)
        ids = [] if ids is None else ids
        for start in range(0, len(payloads), BATCH):  # (not _chunks: one call less per push)
            chunk = payloads[start : start + BATCH]
            ids += pushed_ids((yield Call("queue_push_run", key, chunk)))
        return ids

    # -- consuming ---------------------------------------------------------------------------

    def _pop(
        self, keys: Sequence[str], count: int, block: float | None, ack: Sequence[Delivery]
    ) -> Steps[list[Delivery]]:
        if not keys:
            raise QueueError("pop needs at least one queue key")
        _count(count)
        until = None if not block else time.monotonic() + positive_seconds("block", block)
        acks = _by_key(ack)
        acked: list[str] = []
        while True:
            batch, wait = yield from self._take(keys, count, acks, acked)
            if acks:  # keys the pass did not reach (count filled first, or not popped at all)
                acked += yield from self._ack_groups(acks)
                acks = {}
            if len(acked) < len(ack):
                warn_refused(ack, acked)
            ack = ()
            if batch or until is None:
                return batch
            left = until - time.monotonic()
            if left <= 0:
                return []
            yield Block(keys[0], max(0.01, min(left, wait, self.longest_block)))

    def _take(
        self, keys: Sequence[str], count: int, acks: dict[str, list[Delivery]], acked: list[str]
    ) -> Steps[tuple[list[Delivery], float]]:
        """One non-blocking pass over `keys`; also the seconds until something is scheduled.
        queue_pop itself gives back expired leases, ahead of fresh messages (docs/queue.md)."""
        if len(keys) == 1:  # the usual case, without the loop
            got, due, expires = yield from self._pop_script(keys[0], count, acks, acked)
            return got, _sooner(math.inf, due, expires)
        batch: list[Delivery] = []
        wait = self.poll
        for key in keys:
            if len(batch) >= count:
                break
            got, due, expires = yield from self._pop_script(key, count - len(batch), acks, acked)
            batch += got
            wait = _sooner(wait, due, expires)
        return batch, wait

    def _pop_script(
        self, key: str, count: int, acks: dict[str, list[Delivery]], acked: list[str]
    ) -> Steps[tuple[list[Delivery], int, int]]:
        """queue_pop until `count` are delivered or the queue is dry; the acks of `key` in
        `acks` (taken out of it; the last BATCH of them) go with the first call."""
        ack: Sequence[Delivery] = acks.pop(key, ()) if acks else ()
        if len(ack) > BATCH:
            acked += yield from self._ack_groups({key: list(ack[:-BATCH])})
            ack = ack[-BATCH:]
        got: list[Delivery] = []
        while True:
            want = min(count - len(got), BATCH)
            pairs, wholes = ack_args(ack)
            reply = yield self._pop_call(key, want, pairs)
            rest, refused = take_acked(reply, acked, wholes)
            if refused:
                rest = yield from self._one_by_one(key, want, ack, refused, acked)
            ack = ()
            delivered = deliveries_of(key, rest, want)
            got += delivered
            if len(delivered) < want or len(got) >= count:
                return got, int(reply[0]), int(reply[1])

    def _pop_call(self, key: str, want: int, pairs: list[str | int]) -> Call:
        """The queue_pop of `want` that acknowledges `pairs` first (see `ack_args`)."""
        head = [want, _ms(self.lease), self.max_deliveries, "@", self.consumer]
        if want > 1:  # the short reply (see `deliveries_of`)
            head += ("#", "runs")
        return Call("queue_pop", key, head + pairs)

    def _one_by_one(
        self, key: str, want: int, ack: Sequence[Delivery], refused: list[str], acked: list[str]
    ) -> Steps[Sequence[Any]]:
        """A batch named whole but refused (changed since its pop: part of it extended,
        nacked, acked or recovered) made the script deliver nothing: its messages are
        acknowledged one by one in a second call, which pops. The rest of its reply."""
        ids = set(refused)
        again = [d for d in ack if d.id in ids]
        reply = yield self._pop_call(key, want, tokens(again))
        rest, _ = take_acked(reply, acked, {})
        return rest

    def _settle(self, key: str, ack: Sequence[Delivery], acked: list[str]) -> Steps[None]:
        """One queue_pop that acknowledges `ack` and pops nothing (an ack alone)."""
        pairs, wholes = ack_args(ack)
        reply = yield self._pop_call(key, 0, pairs)
        _, refused = take_acked(reply, acked, wholes)
        if refused:
            yield from self._one_by_one(key, 0, ack, refused, acked)

    # -- settling ----------------------------------------------------------------------------

    def _ack(self, deliveries: Sequence[Delivery]) -> Steps[list[str]]:
        acked = yield from self._ack_groups(_by_key(deliveries))
        warn_refused(deliveries, acked)
        return in_order(deliveries, acked)

    def _ack_groups(self, groups: dict[str, list[Delivery]]) -> Steps[list[str]]:
        acked: list[str] = []
        for key, group in groups.items():
            for chunk in _chunks(group):
                yield from self._settle(key, chunk, acked)
        return acked

    def _nack(self, delivery: Delivery, delay: float | None, reason: str) -> Steps[bool]:
        if delay is None:
            delay = delay_for(delivery.deliveries, self.retry_base, self.retry_cap)
        elif not isinstance(delay, int | float) or delay < 0:
            raise QueueError(f"delay must be seconds >= 0 or None, got {delay!r}")
        return (yield from self._give_back(delivery, delay, reason, "retry"))

    def _give_back(self, delivery: Delivery, delay: float, reason: str, mode: str) -> Steps[bool]:
        args = [delivery.id, delivery.deliveries, _ms(delay), self.max_deliveries, reason, mode]
        outcome = int((yield Call("queue_nack", delivery.key, args)))
        if outcome == 2:
            log.warning("dead letter queue=%s id=%s reason=%r", delivery.key, delivery.id, reason)
        elif outcome == 0:
            log.warning("nack refused (stale) queue=%s id=%s", delivery.key, delivery.id)
        return outcome != 0

    def _extend(self, deliveries: Sequence[Delivery], lease: float | None) -> Steps[list[Delivery]]:
        lease_ms = _ms(self.lease if lease is None else positive_seconds("lease", lease))
        kept: list[Delivery] = []
        for key, group in _by_key(deliveries).items():
            for chunk in _chunks(group):
                flags = yield Call("queue_extend", key, [lease_ms, *tokens(chunk)])
                kept += [d for d, flag in zip(chunk, flags, strict=True) if flag]
        return kept

    def _holders(self, key: str) -> Steps[list[Holder]]:
        flat = yield Call("queue_holders", key)
        return [
            Holder(text(flat[i]), int(flat[i + 1]), int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    def _release(self, key: str, consumers: Sequence[str]) -> Steps[int]:
        """queue_recover of what `consumers` hold, BATCH messages a call, until none is left."""
        for name in consumers:
            if not isinstance(name, str) or not name:
                raise QueueError(f"a consumer is a non-empty name, got {name!r}")
        moved = 0
        while consumers:
            args = [BATCH, -1, self.max_deliveries, *consumers]
            requeued, dead = yield Call("queue_recover", key, args)
            moved += int(requeued) + int(dead)
            if int(requeued) + int(dead) < BATCH:
                break
        if moved:
            log.info("released queue=%s consumers=%s moved=%d", key, ",".join(consumers), moved)
        return moved

    def _recover(self, key: str, count: int, elapsed: float | None) -> Steps[int]:
        _count(count)
        limit = -1 if elapsed is None else _ms(elapsed)
        requeued, dead = yield Call("queue_recover", key, [count, limit, self.max_deliveries])
        if requeued or dead:
            log.info("recovered queue=%s requeued=%d dead=%d", key, requeued, dead)
        return int(requeued) + int(dead)

    # -- operating ---------------------------------------------------------------------------

    def _info(self, key: str) -> Steps[QueueInfo]:
        reply = [int(n) for n in (yield Call("queue_info", key))]
        waiting, inflight, delayed, dead, expired, dropped, records, kept, age = reply
        return QueueInfo(
            key, waiting, inflight, delayed, dead, expired, dropped, records, kept, age / 1000
        )

    def _set_retention(self, key: str, entries: int, age: float) -> Steps[tuple[int, float]]:
        if not isinstance(entries, int) or entries < 1:
            raise QueueError(f"entries must be an integer >= 1, got {entries!r}")
        age_ms = max(1, _ms(positive_seconds("age", age)))
        kept, kept_ms = yield Call("queue_retention", key, [entries, age_ms])
        return int(kept), int(kept_ms) / 1000

    def _inspect(
        self, key: str, pending: bool, start: int, count: int, delayed: bool
    ) -> Steps[list[QueuedMessage]]:
        if pending or delayed:
            state = MessageState.INFLIGHT if pending else MessageState.DELAYED
            return (yield from self._view(key, state, start, count))
        flat = yield Call("queue_waiting", key, [start, count])
        return [
            QueuedMessage(key, text(flat[i]), flat[i + 1], MessageState.WAITING)
            for i in range(0, len(flat), 2)
        ]

    def _view(
        self, key: str, state: MessageState, start: int, count: int
    ) -> Steps[list[QueuedMessage]]:
        now, *flat = yield Call("queue_view", key, [start, count, _VIEWS.index(state) + 1, 1])
        return [viewed(key, state, int(now), flat[i : i + 7]) for i in range(0, len(flat), 7)]

    def _purge(self, key: str) -> Steps[int]:
        return int((yield Call("queue_purge", key)))

    def _dead(self, key: str, start: int, count: int) -> Steps[list[QueuedMessage]]:
        return (yield from self._view(key, MessageState.DEAD, start, count))

    def _settle_dead(
        self, script: str, key: str, ids: Sequence[str], everything: bool
    ) -> Steps[int]:
        if everything and ids:
            raise QueueError(f"give dead letter ids or everything=True, not both (ids: {ids!r})")
        if everything:
            return (yield from self._all_dead(script, key))
        return (yield from self._by_ids(script, key, ids))

    def _by_ids(self, script: str, key: str, ids: Sequence[str]) -> Steps[int]:
        done = 0
        for chunk in _chunks(ids):
            done += int((yield Call(script, key, chunk)))
        return done

    def _all_dead(self, script: str, key: str) -> Steps[int]:
        """`script` (queue_requeue or queue_delete) on every dead letter there was at the start,
        a page at a time (both take what they handle out of the dead set)."""
        info = yield from self._info(key)
        done, left = 0, info.dead
        while left > 0:
            page = yield from self._view(key, MessageState.DEAD, 0, min(left, BATCH))
            if not page:
                break
            done += yield from self._by_ids(script, key, [m.id for m in page])
            left -= len(page)
        return done


def check_wait(replicas: int, within: float, longest: float) -> int:
    """Validate `push(..., wait_replicas, wait_timeout)`; the timeout in ms for ``WAIT``, cut
    to `longest` (the client's socket timeout, less a margin: WAIT blocks like BLMOVE); 0 when
    no replica is waited for."""
    if not isinstance(replicas, int) or replicas < 0:
        raise QueueError(f"wait_replicas must be an integer >= 0, got {replicas!r}")
    seconds = positive_seconds("wait_timeout", within)
    return _ms(min(seconds, longest)) if replicas else 0  # (no WAIT: nothing to work out)
