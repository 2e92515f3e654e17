"""Keeping leases alive while a consumer works: a heartbeat owned by a context manager."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from redis.exceptions import RedisError

from redline.queue.model import Delivery

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)


class Extends(Protocol):
    """What a `LeaseKeeper` needs of its queue (`ReliableQueue` is one)."""

    async def extend(self, *deliveries: Delivery) -> list[Delivery]: ...


class LeaseKeeper:
    """Extends the leases of `deliveries` every `every` seconds until the block ends.

    `lost` lists the deliveries whose lease could not be kept (recovered and redelivered, or
    acknowledged meanwhile); their ack would be refused, so a handler may check it and stop early.
    """

    def __init__(self, queue: Extends, deliveries: Sequence[Delivery], every: float) -> None:
        self.queue = queue
        self.every = every
        self.held = list(deliveries)
        self.lost: list[Delivery] = []
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._run(), name="redline-keep-leases")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A cancellation can be lost below `extend` (in redis-py, seen under load on Python
        # 3.11): the loop would then extend the leases for ever and this exit never return, so
        # the loop also stops on a flag.
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while self.held and not self._stopped:
            await asyncio.sleep(self.every)
            if self._stopped:
                return
            try:
                kept = await self.queue.extend(*self.held)
            except RedisError as exc:
                log.warning("lease extension failed error=%r retry_in=%.1fs", exc, self.every)
                continue
            lost = [d for d in self.held if d not in kept]
            if lost:
                log.warning("leases lost ids=%s", ",".join(d.id for d in lost))
                self.lost += lost
            self.held = kept
