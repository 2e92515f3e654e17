"""The concurrency slots a worker holds: taken by an admission, kept for its next jobs.

A job admitted under a cap takes a slot named for this worker and that admission call
(`Slots.prefix`, ``@<worker>.<call>:``, then the job's id: a name no other slot has). When the
job ends the worker keeps the slot (`done`), and the next job of that limit it has in hand
starts on it with no call to the server (`take`, from `jobs.limits.Gate.admit_held`). So in a
steady drain a capped job costs the server nothing for its cap: the slots set keeps the same
members, their count (``ZCARD``, what every reader counts) is what workers hold, and the jobs
a worker runs of a limit are never more than the slots it holds there.

A slot kept free for `HOLD` seconds goes back (with the next admission call of its queue, or
a ``job_slot_release`` call of its own: `gate_slots.Returns`), and every free one when the
worker stops. Every `CHECK` seconds the worker extends every slot it holds, running or free
(`check`: one ``job_slot_extend`` per queue, as the lease's deadline is their score: a killed
worker's slots come back when it passes), and the reply says which limits have jobs waiting
for a slot: for those the worker gives its free slots back at once, and each slot as its job
ends, until none wait (`contended`). A slot the server no longer has (reclaimed while the
worker stalled past its lease) is forgotten.

Rate limits the same way, with starts (`Starts`): an admission call also takes up to as many
starts as the worker asked under that limit in the last `SPEND` seconds (at most an eighth of
the limit, and what its window has room for), logged as starts at once; the worker spends them
on its next jobs of that limit with no call, and drops what it has not spent `SPEND` seconds
after it sent the call. Logged before the jobs start, and spent within `SPEND` <= 1 s, the
starts in any one-second window are then at most those logged in it and in the `SPEND`
before it: at most two windows' worth, N + burst with burst = N, as without chunks.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from redline.connection import AsyncClient
from redline.jobs import gate_slots
from redline.jobs.admission import Held, Limit, extend_call
from redline.jobs.gate_slots import Returns
from redline.scripting.scripts import run_batched

__all__ = ["CHECK", "SPEND", "Slots", "Starts"]

CHECK = 1.0  # seconds between a worker's checks of its slots (a third of its lease if shorter)
SPEND = 0.5  # seconds a worker may spend starts taken ahead, from its call (at most 1: above)


class Slots:
    """The slots one worker holds, by limit (see the module docstring)."""

    def __init__(self, returns: Returns) -> None:
        self.returns = returns
        # Whether a finished job's slot is kept (the worker runs as a service, not stopping).
        self.keeps: Callable[[], bool] = lambda: False
        self.owned: dict[Held, set[str]] = {}  # every slot held: running jobs' and free ones
        self.free: dict[Held, list[tuple[str, float]]] = {}  # free ones, when freed (oldest first)
        self.contended: set[Held] = set()  # limits with jobs waiting, by the last check
        self._worker = f"@{secrets.token_hex(4)}."
        self.calls = 0  # admission calls made (each names its slots: `prefix`)
        self._sweep: asyncio.TimerHandle | None = None

    def prefix(self) -> str:
        """The names of the slots one admission call takes: this prefix, then the job's id."""
        self.calls += 1
        return f"{self._worker}{self.calls}:"

    def own(self, held: Held, name: str) -> None:
        """An admission gave this worker slot `name` of `held`."""
        names = self.owned.get(held)
        if names is None:
            self.owned[held] = {name}
        else:
            names.add(name)

    def take(self, held: Held) -> str | None:
        """A free slot of `held` for a job to start on (the last freed), or None."""
        free = self.free.get(held)
        if not free or held in self.contended:
            return None
        return free.pop()[0]

    def done(self, held: Held, name: str) -> None:
        """The job on slot `name` of `held` ended: the slot is kept free for the next job, or
        given back (jobs wait for the limit, or the worker does not keep slots)."""
        names = self.owned.get(held)
        if names is None or name not in names:
            return  # reclaimed meanwhile (`check`): not this worker's any more
        if held in self.contended or not self.keeps():
            self._give(held, name)
            return
        self.free.setdefault(held, []).append((name, time.monotonic()))
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(gate_slots.HOLD, self._swept)

    def give_back_free(self) -> None:
        """Queue every free slot to go back (the worker stops)."""
        for held, free in self.free.items():
            for name, _ in free:
                self._give(held, name)
        self.free.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    async def check(self, client: AsyncClient, lease_ms: int) -> None:
        """Extend every slot held (one call per queue); learn which limits have jobs waiting
        (their free slots go back now) and which slots the server no longer has."""
        by_queue: dict[str, dict[Limit, list[str]]] = {}
        for (queue, limit), names in self.owned.items():
            if names:
                by_queue.setdefault(queue, {})[limit] = list(names)
        for queue, held in by_queue.items():
            keys, args = extend_call(lease_ms, held)
            reply = await run_batched(client, "job_slot_extend", keys, args)
            self._checked([(queue, limit) for limit in held], reply)

    def _checked(self, limits: Sequence[Held], reply: Any) -> None:
        waiting = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        lost = {n.decode() if isinstance(n, bytes) else str(n) for n in reply[1:]}
        given = False
        for held, flag in zip(limits, waiting, strict=True):
            names = self.owned.get(held, set())
            names -= lost
            if not names:
                self.owned.pop(held, None)
            free = [(n, at) for n, at in self.free.pop(held, []) if n not in lost]
            if flag == "1":
                self.contended.add(held)
                for name, _ in free:
                    self._give(held, name)
                given = given or bool(free)
            else:
                self.contended.discard(held)
                if free:
                    self.free[held] = free
        if given:
            self.returns.send_soon()

    def _give(self, held: Held, name: str) -> None:
        names = self.owned.get(held)
        if names is not None:
            names.discard(name)
            if not names:
                del self.owned[held]
        self.returns.put(held[0], held[1], name)

    def _swept(self) -> None:
        """Slots kept free `HOLD` seconds go back; the sweep comes again while any are kept."""
        self._sweep = None
        idle_since = time.monotonic() - gate_slots.HOLD
        given = False
        for held, free in list(self.free.items()):
            idle = 0
            while idle < len(free) and free[idle][1] <= idle_since:
                self._give(held, free[idle][0])
                idle += 1
            del free[:idle]
            given = given or idle > 0
            if not free:
                del self.free[held]
        if self.free:
            self._sweep = asyncio.get_running_loop().call_later(gate_slots.HOLD, self._swept)
        if given:
            self.returns.send_soon()


class Starts:
    """The starts a worker took ahead under rate limits, and how many it asks for (see the
    module docstring)."""

    def __init__(self) -> None:
        self.chunks: dict[Limit, list[list[float]]] = {}  # limit -> [starts left, spend by]
        # limit -> [jobs asked about since `since`, in the SPEND before, since]
        self.asked: dict[Limit, list[float]] = {}
        self.spent = 0  # starts taken ahead spent (jobs started with no call)
        self.least = 0  # starts to ask for at least: the worker's next batch (its concurrency)

    def note(self, log: Limit) -> None:
        """A job under rate limit `log` is to start (asked about, or started locally)."""
        counts = self.asked.get(log)
        now = time.monotonic()
        if counts is None:
            if len(self.asked) > 10_000:  # many per-key limits: forget, and count again
                self.asked.clear()
            counts = self.asked[log] = [0.0, 0.0, now]
        elif now - counts[2] > SPEND:
            counts[:] = [0.0, counts[0] if now - counts[2] < 2 * SPEND else 0.0, now]
        counts[0] += 1

    def wanted(self, log: Limit) -> int:
        """How many starts to take ahead under `log`: as many as were asked in a `SPEND`, and
        at least the next batch's."""
        counts = self.asked.get(log)
        return self.least if counts is None else int(max(counts[0], counts[1], self.least))

    def left(self, log: Limit) -> int:
        """The starts taken ahead under `log` still to spend."""
        now = time.monotonic()
        return int(sum(n for n, until in self.chunks.get(log, ()) if until >= now))

    def grant(self, log: Limit, starts: int, made: float) -> None:
        """An admission call made at `made` (monotonic) took `starts` ahead under `log`."""
        if len(self.chunks) > 10_000:
            self.chunks.clear()
        self.chunks.setdefault(log, []).append([starts, made + SPEND])

    def take(self, log: Limit) -> bool:
        """Spend a start taken ahead under `log`; False: none left (or too old to spend)."""
        chunks = self.chunks.get(log)
        if not chunks:
            return False
        now = time.monotonic()
        while chunks and (chunks[0][0] < 1 or chunks[0][1] < now):
            chunks.pop(0)
        if not chunks:
            del self.chunks[log]
            return False
        chunks[0][0] -= 1
        self.spent += 1
        return True

    def give(self, log: Limit) -> None:
        """Put back a start `take` just gave (its job did not start after all)."""
        self.chunks[log][0][0] += 1
        self.spent -= 1
