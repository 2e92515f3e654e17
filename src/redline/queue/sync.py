"""The blocking ReliableQueue, for threads and scripts: the same operations on a sync client.

Its logic is `redline.queue.core`, shared with the asyncio `ReliableQueue`; this class only
performs the calls with `redline.connection.connect_sync` clients.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast

from redis.cluster import RedisCluster
from redis.exceptions import OutOfMemoryError, RedisError

from redline.connection import SyncClient, longest_block
from redline.errors import ServerFullError
from redline.queue.core import (
    Call,
    QueueCore,
    Steps,
    check_wait,
    keys_of,
    positive_seconds,
)
from redline.queue.library import blocked_sync, run_sync
from redline.queue.model import DEAD_AGE, DEAD_MAX, Delivery, Holder, QueuedMessage, QueueInfo
from redline.queue.reliable import check_client
from redline.queue.replicated import checked_reply, push_on_cluster_sync
from redline.scripting import scripts

__all__ = ["SyncLeaseKeeper", "SyncReliableQueue"]

log = logging.getLogger(__name__)


class SyncReliableQueue(QueueCore):
    """The ReliableQueue with a blocking API; arguments and results as in `ReliableQueue`.

    queue = SyncReliableQueue(connect_sync(url), lease=30.0)
    batch = queue.pop("orders", count=100, block=5)
    queue.ack(*batch)
    """

    def __init__(
        self,
        client: SyncClient,
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

    def _drive(self, steps: Steps[Any], client: SyncClient | None = None) -> Any:
        reply: Any = None
        try:
            while True:
                step = steps.send(reply)
                if isinstance(step, Call):
                    reply = run_sync(client or self.client, step, self.use_functions)
                else:  # the call after a Block goes with it (see Block)
                    then = cast(Call, steps.send(None))
                    reply = blocked_sync(self.client, step, then, self.use_functions)
        except StopIteration as done:
            return done.value

    def push(
        self,
        key: str,
        *payloads: bytes | str,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> list[str]:
        """See `ReliableQueue.push`."""
        ms = check_wait(wait_replicas, wait_timeout, self.longest_block)
        ids: list[str] = []
        try:
            if wait_replicas:
                self._push_replicated(key, payloads, ids, wait_replicas, ms)
            else:
                self._drive(self._push(key, payloads, ids))
        except OutOfMemoryError:
            raise ServerFullError(key, ids, len(payloads) - len(ids)) from None
        return ids

    def _push_replicated(
        self, key: str, payloads: Sequence[object], ids: list[str], replicas: int, ms: int
    ) -> None:
        # See ReliableQueue._push_replicated: the push and its WAIT share one connection.
        steps, reply = self._push(key, payloads, ids), None
        with contextlib.suppress(StopIteration):
            while True:
                call = cast(Call, steps.send(reply))  # _push only calls, never blocks
                results = self._with_wait(call, replicas, ms)
                reply = checked_reply(key, ids, results, replicas)

    def _with_wait(self, call: Call, replicas: int, ms: int) -> list[Any]:
        if isinstance(self.client, RedisCluster):
            return push_on_cluster_sync(self.client, call, replicas, ms)
        with self.client.pipeline(transaction=False) as pipe:
            keys = keys_of(call.key).of_script(call.script)
            scripts.run_sync(cast(Any, pipe), call.script, keys, call.args)
            pipe.wait(replicas, ms)
            return list(pipe.execute())

    def pop(
        self,
        *keys: str,
        count: int = 1,
        block: float | None = None,
        ack: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """See `ReliableQueue.pop`."""
        result: list[Delivery] = self._drive(self._pop(keys, count, block, ack))
        return result

    def ack(self, *deliveries: Delivery) -> list[str]:
        """See `ReliableQueue.ack`."""
        result: list[str] = self._drive(self._ack(deliveries))
        return result

    def nack(self, delivery: Delivery, delay: float | None = None, reason: str = "") -> bool:
        """See `ReliableQueue.nack`."""
        return bool(self._drive(self._nack(delivery, delay, reason)))

    def dead_letter(self, delivery: Delivery, reason: str = "") -> bool:
        """See `ReliableQueue.dead_letter`."""
        return bool(self._drive(self._give_back(delivery, 0, reason, "dead")))

    def extend(self, *deliveries: Delivery, lease: float | None = None) -> list[Delivery]:
        """See `ReliableQueue.extend`."""
        result: list[Delivery] = self._drive(self._extend(deliveries, lease))
        return result

    def keep_leases(
        self, deliveries: Sequence[Delivery], every: float | None = None
    ) -> SyncLeaseKeeper:
        """``with queue.keep_leases(batch) as keeper:`` extends the leases from a thread every
        `every` seconds (default a third of the lease); `keeper.lost` as in `LeaseKeeper`."""
        return SyncLeaseKeeper(self, deliveries, positive_seconds("every", every or self.lease / 3))

    def recover(self, key: str, count: int = 100, elapsed: float | None = None) -> int:
        """See `ReliableQueue.recover`."""
        return int(self._drive(self._recover(key, count, elapsed)))

    def holders(self, key: str) -> list[Holder]:
        """See `ReliableQueue.holders`."""
        result: list[Holder] = self._drive(self._holders(key))
        return result

    def release(self, key: str, *consumers: str) -> int:
        """See `ReliableQueue.release`."""
        return int(self._drive(self._release(key, consumers)))

    def info(self, key: str) -> QueueInfo:
        """See `ReliableQueue.info`."""
        result: QueueInfo = self._drive(self._info(key))
        return result

    def set_retention(
        self, key: str, entries: int = DEAD_MAX, age: float = DEAD_AGE
    ) -> tuple[int, float]:
        """See `ReliableQueue.set_retention`."""
        result: tuple[int, float] = self._drive(self._set_retention(key, entries, age))
        return result

    def inspect(
        self,
        key: str,
        pending: bool = False,
        start: int = 0,
        count: int = 100,
        *,
        delayed: bool = False,
    ) -> list[QueuedMessage]:
        """See `ReliableQueue.inspect`."""
        result: list[QueuedMessage] = self._drive(
            self._inspect(key, pending, start, count, delayed)
        )
        return result

    def dead(self, key: str, start: int = 0, count: int = 100) -> list[QueuedMessage]:
        """See `ReliableQueue.dead`."""
        result: list[QueuedMessage] = self._drive(self._dead(key, start, count))
        return result

    def purge(self, key: str) -> int:
        """See `ReliableQueue.purge`."""
        return int(self._drive(self._purge(key)))

    def requeue(self, key: str, *ids: str, everything: bool = False) -> int:
        """See `ReliableQueue.requeue`."""
        return int(self._drive(self._settle_dead("queue_requeue", key, ids, everything)))

    def delete(self, key: str, *ids: str, everything: bool = False) -> int:
        """See `ReliableQueue.delete`."""
        return int(self._drive(self._settle_dead("queue_delete", key, ids, everything)))


class SyncLeaseKeeper:
    """`LeaseKeeper` for the blocking queue: a daemon thread extends the leases."""

    def __init__(self, queue: SyncReliableQueue, deliveries: Sequence[Delivery], every: float):
        self.queue = queue
        self.every = every
        self.held = list(deliveries)
        self.lost: list[Delivery] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redline-keep-leases", daemon=True)

    def __enter__(self) -> SyncLeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while self.held and not self._done.wait(self.every):
            try:
                kept = self.queue.extend(*self.held)
            except RedisError as exc:
                log.warning("lease extension failed error=%r retry_in=%.1fs", exc, self.every)
                continue
            lost = [d for d in self.held if d not in kept]
            if lost:
                log.warning("leases lost ids=%s", ",".join(d.id for d in lost))
                self.lost += lost
            self.held = kept
