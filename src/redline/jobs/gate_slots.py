"""The concurrency slots a worker gives back (`Gate`'s half that returns them).

A finished job's slot is queued (`Returns.add`) and goes back with the next admission call of
its queue (`take`: `job_admit` gives slots back before it decides), or with the settling of
its batch (`send`: one ``job_slot_release`` call per queue), whichever comes first. While
the worker's jobs are fast (`hold`), the settling leaves them for the next admission, which
comes within a batch's time, and a timer sends those none took after `HOLD` seconds: a
drain's slots then go back in its admissions' calls rather than in calls of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from redline.connection import AsyncClient
from redline.jobs.admission import Limit, Released, release_call
from redline.scripting.scripts import run_batched

__all__ = ["HOLD", "Returns"]

log = logging.getLogger(__name__)

HOLD = 0.02  # seconds the settling's slots may wait for the next admission (see `Returns.hold`)


class Returns:
    """The slots of finished jobs not given back yet, by queue (see the module docstring)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.queued: dict[str, Released] = {}  # queue -> by limit, the finished jobs' ids
        # Whether the settling's slots may wait for the next admission (the worker's jobs are
        # fast, so one comes within `HOLD`): they go with it, or on their own after `HOLD`.
        self.hold: Callable[[], bool] = lambda: False
        self._held_back: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def put(self, queue: str, limit: Limit, job_id: str) -> None:
        """Queue the slot under `limit` of `queue` that finished job `job_id` held."""
        by_limit = self.queued.get(queue)
        if by_limit is None:
            by_limit = self.queued[queue] = {}
        ids = by_limit.get(limit)
        if ids is None:
            by_limit[limit] = [job_id]
        else:
            ids.append(job_id)

    def add(self, queue: str, releases: Mapping[Limit, Sequence[str]]) -> None:
        """Queue `releases` of `queue` (by limit, job ids: not sent after all)."""
        by_limit = self.queued.setdefault(queue, {})
        for limit, ids in releases.items():
            by_limit.setdefault(limit, []).extend(ids)

    def take(self, queue: str) -> Released:
        """The slots of `queue`, taken by its admission call (which gives them back first);
        none left held back: no timer to send them either."""
        releases = self.queued.pop(queue, {})
        if not self.queued and self._held_back is not None:
            self._held_back.cancel()
            self._held_back = None
        return releases

    async def send(self) -> None:
        """Give back the queued slots (one call per queue), waking a waiting job for each; or,
        while `hold` says so, leave them for the next admission, and send what is left of
        them `HOLD` seconds later."""
        if self.queued and self.hold():
            if self._held_back is None:
                self._held_back = asyncio.get_running_loop().call_later(HOLD, self.send_soon)
            return
        if self._held_back is not None:
            self._held_back.cancel()
            self._held_back = None
        if self._sending:  # sent after a hold: done before this returns (the worker may stop)
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self._send_all()

    def send_soon(self) -> None:
        """Send the queued slots in a task of their own (`HOLD` passed, and no admission took
        them meanwhile; or slots a worker held free, `jobs.held_slots`)."""
        if self._held_back is not None:  # called before its timer: that send is this one
            self._held_back.cancel()
            self._held_back = None
        if self.queued:
            sending = asyncio.create_task(self._send_all())
            self._sending.add(sending)
            sending.add_done_callback(self._sent)

    def _sent(self, sending: asyncio.Task[None]) -> None:
        self._sending.discard(sending)
        if not sending.cancelled() and sending.exception() is not None:
            log.warning("slots not given back yet: %r (the next call tries)", sending.exception())

    async def _send_all(self) -> None:
        while self.queued:
            queue, releases = self.queued.popitem()
            keys, args = release_call(queue, releases)
            try:
                await run_batched(self.client, "job_slot_release", keys, args)
            except BaseException:
                self.add(queue, releases)
                raise
