"""The worker: pops jobs in batches, runs them concurrently, acks them in batches.

Async tasks run on the event loop, sync tasks in a thread pool; at most `concurrency` jobs run
at once. Pops take as many jobs as there are free slots, and none while `UNSETTLED` times
`concurrency` finished jobs wait to be settled (so the settling never falls behind the pops
without limit); the leases of the jobs in hand (running, or finished and not yet settled) are
extended together (`ReliableQueue.extend`, every third of the lease); finished jobs are settled
together by `jobs.settling` (one ack call, and one pipeline for any job records, for all that
finished since the last settling); the counters the dashboard charts are added twice a second.
So a busy worker spends a few Redis round trips per batch of jobs, not per job, and an idle one
acks a job as soon as it finishes.

Outcomes: success → ack (and a result record when the task has ``result_ttl``); failure →
``nack`` with the task's backoff while retries remain, else the dead-letter list with the
traceback as the reason; a job delivered more than ``max_deliveries`` times (its runs keep
killing workers) → dead-letter list; a payload that is not a job, or names a task this worker
lacks → dead-letter list at once, with the reason.

Shutdown (`stop`): no more pops; in-flight jobs get `grace` seconds to finish; those still
running are then cancelled (async) or abandoned to their thread (sync) and returned to the
queue for another worker — at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from redline.connection import AsyncClient
from redline.errors import TRANSIENT, JobError
from redline.jobs.ahead import FAST, Ahead
from redline.jobs.busy import Busy
from redline.jobs.control import CONTROL_EVERY
from redline.jobs.cron import CronSchedule, CronScheduler
from redline.jobs.document import JobDocument, JobState
from redline.jobs.held_slots import CHECK
from redline.jobs.job import enqueue
from redline.jobs.limits import Gate
from redline.jobs.priority import Levels
from redline.jobs.promoting import Promoter
from redline.jobs.running import JobRunner
from redline.jobs.runs import Runs
from redline.jobs.settling import JobOutcome, Settler
from redline.jobs.task import Tasks
from redline.queue import Delivery, ReliableQueue
from redline.runtime import Context
from redline.runtime.metrics import Metrics

__all__ = ["QUEUES_KEY", "JobOutcome", "Worker"]

log = logging.getLogger(__name__)

QUEUES_KEY = "redline:jobs:queues"  # set of queue names workers serve (the dashboard lists them)
WAKE_POLL = 0.2  # seconds a pop blocks while jobs wait for a concurrency slot
# Finished jobs waiting to be settled, in concurrencies, at which the worker stops popping until
# the settling catches up (a bound on the backlog's memory and on the leases the heartbeat
# extends). The settle loop takes everything finished in one go, so a healthy drain has about
# one concurrency's worth waiting and one being settled; a loaded one peaked at 4-5 (no-op jobs,
# docs/DEVELOPING.md, `settlebound`). A flood of failing jobs, each a nack and a record, had
# thousands: it meets this.
UNSETTLED = 8


class Worker(JobRunner):
    """Runs the jobs of `tasks` from their queues; a `Service` and a `Hook` for `run_service`."""

    name = "worker"

    def __init__(
        self,
        tasks: Tasks,
        queues: Sequence[str] = (),
        concurrency: int = 16,
        threads: int | None = None,
        lease: float = 30.0,
        grace: float = 10.0,
        cron: bool = True,
        metrics: Metrics | None = None,
        track: bool = True,
    ) -> None:
        if concurrency < 1:
            raise JobError(f"concurrency {concurrency!r} must be >= 1")
        self.queues = list(queues) or tasks.queues
        self.concurrency, self.lease, self.grace, self.cron = concurrency, lease, grace, cron
        # When given: job durations ("jobs"), failures ("failed"), and what each queue's
        # retention dropped ("dropped:<queue>", fields dead_letters and records).
        self.metrics = metrics
        self.active = 0  # jobs popped and not yet finished
        self.completed = 0
        self.max_jobs: int | None = None  # jobs to take before stopping (`jobs.recycle`)
        self.taken = 0
        self.unsettled_limit = UNSETTLED * concurrency
        self.held_back = 0  # times the pops waited for the settling to catch up (`_behind`)
        self._runs: dict[asyncio.Task[JobOutcome], Delivery] = {}
        self._admitting: set[asyncio.Task[None]] = set()  # popped batches the gate decides on
        self.ahead = Ahead()  # the next batch, popped while one is admitted (jobs.ahead)
        self._finished: list[JobOutcome] = []
        self._settling: list[JobOutcome] = []  # taken from `_finished` by the settling now
        self._ready = asyncio.Event()  # outcomes wait to be settled
        self._slot = asyncio.Event()  # a slot came free, or the settling caught up
        self._closing = False
        self._background: list[asyncio.Task[None]] = []
        self._settler: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None  # the held slots' checks
        self._queue: ReliableQueue | None = None
        self.levels = Levels(self.queues, _declared(tasks))  # priorities: the keys to pop
        self._gate: Gate | None = None
        self._settle_with: Settler | None = None
        executor = ThreadPoolExecutor(threads or concurrency, thread_name_prefix="job")
        super().__init__(tasks, executor, Runs(self.queues, track, self._ready.set))
        self.busy = Busy(concurrency, self.levels.queue_of)  # what runs, in the instance record

    @property
    def queue(self) -> ReliableQueue:
        if self._queue is None:
            raise JobError("worker not started: run it with run_service or call start(ctx)")
        return self._queue

    # -- Hook ------------------------------------------------------------------------------

    def _bind(self, client: AsyncClient) -> ReliableQueue:
        deliveries = max([t.max_deliveries for t in self.tasks.values()] + [1]) + 1
        self._queue = ReliableQueue(client, lease=self.lease, max_deliveries=deliveries)
        self._gate = Gate(self._queue, self.tasks, self.levels, self._expired)
        self._gate.returns.hold = self._holding
        self._gate.slots.keeps = self._keeping
        self._gate.starts.least = self.concurrency
        self._settle_with = Settler(self._queue, self._gate, self.levels, self.runs)
        return self._queue

    def _holding(self) -> bool:
        """Whether finished jobs' slots may wait for the next admission (`Returns.hold`): while
        this worker runs as a service (not `run_once`), is not stopping, and its jobs are fast
        (the next admission comes soon)."""
        return self._settler is not None and not self._closing and self.ahead.mean_run < FAST

    def _keeping(self) -> bool:
        """Whether a finished job's slot is kept for the next job of its limit
        (`held_slots.Slots.keeps`): while this worker runs as a service and is not stopping."""
        return self._settler is not None and not self._closing

    def _expired(self, delivery: Delivery, doc: JobDocument) -> None:
        """A job the gate dropped unrun: its `expired` event (attempt 0, as its record says:
        it never started) goes with the next flush."""
        unrun = msgspec.structs.replace(delivery, deliveries=delivery.deliveries - 1)
        self.runs.settled(unrun, doc, JobState.EXPIRED, "")
        self._ready.set()

    @property
    def settler(self) -> Settler:
        if self._settle_with is None:
            raise JobError("worker not started: run it with run_service or call start(ctx)")
        return self._settle_with

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            raise JobError("worker not started: run it with run_service or call start(ctx)")
        return self._gate

    async def start(self, ctx: Context) -> None:
        self._bind(ctx.redis)
        await ctx.redis.sadd(QUEUES_KEY, *self.queues)
        await self.runs.control.refresh(ctx.redis)
        control = self.runs.control.run(ctx.redis, ctx.stopping, self.runs.cancel)
        self._background.append(asyncio.create_task(control))
        self._settler = asyncio.create_task(self._settle_loop())
        self._heartbeat = asyncio.create_task(self._heartbeat_loop())
        self._checking = asyncio.create_task(self._check_loop())
        promoter = Promoter(self.queue, self.levels, self.metrics, self._flush_counts)
        self._background.append(asyncio.create_task(promoter.run(ctx.stopping)))
        entries = [(t.name, CronSchedule.parse(t.cron)) for t in self.tasks.values() if t.cron]
        if self.cron and entries:
            scheduler = CronScheduler(ctx.redis, entries, self._enqueue_cron)
            self._background.append(asyncio.create_task(scheduler.run(ctx.stopping)))
        log.info(
            "worker started queues=%s tasks=%d concurrency=%d",
            self.queues,
            len(self.tasks),
            self.concurrency,
        )

    async def tick(self, ctx: Context) -> None:
        await self.busy.publish(ctx, self.runs.jobs)

    async def stop(self, ctx: Context) -> None:
        """Let in-flight jobs finish for `grace` seconds, then return the rest to the queue."""
        if self._admitting:  # what they admit joins the jobs in hand
            await asyncio.wait(list(self._admitting), timeout=self.grace)
        self._give_back(self.ahead.drop())  # popped ahead, never admitted
        if self._runs:
            log.info(
                "worker stopping: waiting up to %.1fs for jobs=%d", self.grace, len(self._runs)
            )
            await asyncio.wait(list(self._runs), timeout=self.grace)
        for running in list(self._runs):
            running.cancel()  # its job is returned to the queue (see _run_one)
        if self._runs:
            await asyncio.wait(list(self._runs), timeout=5)
        for beat in (self._heartbeat, self._checking):
            if beat is not None:
                beat.cancel()
        self._closing = True
        self._ready.set()
        for background in [t for t in (self._settler, *self._background) if t is not None]:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(background, 10)
        if self._gate is not None:  # slots held, or left for an admission that will not come
            with contextlib.suppress(*TRANSIENT):
                await self._gate.release(())
        with contextlib.suppress(*TRANSIENT):
            await self._flush_counts()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("worker stopped completed=%d held_back=%d", self.completed, self.held_back)

    # -- Service ---------------------------------------------------------------------------

    async def step(self, ctx: Context) -> None:
        """Wait for a free slot (popping ahead meanwhile while jobs are admitted: see
        `jobs.ahead`), pop up to that many jobs, start them. No pop while the settling is
        behind (`_behind`): it resumes when the settling's round ends."""
        counted = False
        while (self.active >= self.concurrency or self._behind()) and not ctx.stopping.is_set():
            left = None if self.max_jobs is None else self.max_jobs - self.taken
            if self._behind():
                self.held_back += 0 if counted else 1
                counted = True
            elif ahead := self.ahead.wanted(left):
                popped = await self._pop(ctx, ahead, 0)  # no wait: the slots fill meanwhile
                self.taken += len(popped)
                self.ahead.keep(popped)
                self.gate.prepare(popped)  # judged while they wait, not when slots free
                return
            self._slot.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot.wait(), 0.5)
        if ctx.stopping.is_set():
            return
        free = self.concurrency - self.active
        if self.ahead.held:  # popped while the last batch was admitted: they go first
            batch = self._start_held(self._unpaused(self.ahead.take(free)))
            if not await self._ride(ctx, batch):
                self._dispatch(batch)
                await asyncio.sleep(0)  # their admission is sent before the next pop ahead
        elif self.max_jobs is not None and (free := min(free, self.max_jobs - self.taken)) <= 0:
            log.info("worker recycling: took jobs=%d max_jobs=%d", self.taken, self.max_jobs)
            ctx.stopping.set()  # what is in hand finishes in `stop`
            return
        else:
            # A pop blocks at most CONTROL_EVERY: a queue paused meanwhile gives no job after it.
            block = min(ctx.config.pop_timeout, 5.0, CONTROL_EVERY)
            popped = await self._pop(ctx, free, block)
            self.taken += len(popped)
            self._dispatch(self._start_held(popped))
        if self.runs.events:
            self._ready.set()  # write the started events of the last step's jobs now

    def _start_held(self, popped: Sequence[Delivery]) -> Sequence[Delivery]:
        """Start those of `popped` the gate admits with no call (`Gate.admit_held`: on slots
        this worker holds, with starts it took ahead); the rest, to be admitted."""
        if self._gate is None or not self._gate.holds or not self._gate.judges(popped):
            return popped
        started, rest = self._gate.admit_held(popped)
        self.active += len(started)
        self._start(started)
        return rest

    def _dispatch(self, popped: Sequence[Delivery]) -> None:
        """Start `popped` (they hold their run slots from here on, also while admitted)."""
        self.active += len(popped)
        if self._gate is not None and self._gate.judges(popped):
            # Admitted in the background: the next pop goes out while the verdicts come back.
            self.ahead.admitting_now(len(popped))
            admitting = asyncio.create_task(self._admit(popped))
            self._admitting.add(admitting)
            admitting.add_done_callback(self._admitting.discard)
        else:
            self._start(popped)

    def _unpaused(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """`deliveries` less those of queues paused since their pop (given back unrun)."""
        if not self.runs.control.paused:
            return list(deliveries)
        active = set(self.runs.control.active(self.queues))
        kept = [d for d in deliveries if self.levels.queue_of(d.key) in active]
        self._give_back([d for d in deliveries if self.levels.queue_of(d.key) not in active])
        return kept

    def _give_back(self, deliveries: Sequence[Delivery]) -> None:
        """Return `deliveries` (popped, never run) to their queue with the next settling."""
        self._finished += [JobOutcome(d, returned=True) for d in deliveries]
        self.taken -= len(deliveries)
        if deliveries:
            self._ready.set()

    def _start(self, deliveries: Sequence[Delivery]) -> None:
        """Run each of `deliveries` (already counted in `active` and `taken`)."""
        for delivery in deliveries:
            running = asyncio.create_task(self._run_one(delivery))
            self._runs[running] = delivery
            running.add_done_callback(self._done)

    async def _admit(self, popped: Sequence[Delivery]) -> None:
        """Start what the gate admits of `popped`; give back the slots of the rest. A failed
        admission leaves them leased: they come back when their lease runs out."""
        admitted: list[Delivery] = []
        try:
            admitted = await self.gate.admit(popped)
        except Exception:
            log.warning("worker admission failed jobs=%d", len(popped), exc_info=True)
        finally:
            self._admitted(popped, admitted)
        self._start(admitted)

    def _admitted(self, popped: Sequence[Delivery], admitted: Sequence[Delivery]) -> None:
        """The admission of `popped` is over: the run slots of those not admitted are free."""
        self.ahead.admitted(len(popped))
        unrun = len(popped) - len(admitted)
        self.active -= unrun
        self.taken -= unrun
        if unrun:
            self._slot.set()

    async def _ride(self, ctx: Context, batch: Sequence[Delivery]) -> bool:
        """Admit `batch`, jobs held ahead, in one round trip with the next pop ahead (its
        admission's call written before the pop, on the queue's held connection) when the
        worker would pop ahead right after sending it (see `jobs.ahead`); False: not done so.
        It runs as a task that `stop` waits for, as `_admit` does."""
        if ctx.stopping.is_set() or not self.gate.judges(batch):
            return False
        queues = self.runs.control.active(self.queues)
        left = None if self.max_jobs is None else self.max_jobs - self.taken
        self.active += len(batch)
        self.ahead.admitting_now(len(batch))
        popping = self.active >= self.concurrency and queues and not self._behind()
        count = self.ahead.wanted(left) if popping else 0
        if not count:  # no pop ahead follows: the batch is admitted on its own
            self.active -= len(batch)
            self.ahead.admitted(len(batch))
            return False
        self.ahead.rode += 1
        riding = asyncio.create_task(self._admit_riding(batch, self.levels.keys_for(queues), count))
        self._admitting.add(riding)
        riding.add_done_callback(self._admitting.discard)
        await asyncio.wait([riding])  # not cancelled with this step: `stop` waits for it
        return True

    async def _admit_riding(self, batch: Sequence[Delivery], keys: list[str], count: int) -> None:
        """`_ride`'s round trip: `batch`'s admission, then a pop ahead of up to `count` jobs
        from `keys` (no wait); what is popped is held ahead and judged, what is admitted
        starts. A failure leaves both leased, to come back when their leases run out."""
        asking, admitted = self.gate.ask(batch), []
        try:
            try:
                replies, popped = await self.queue.pop_after(
                    asking.commands, *keys, count=count, block=0
                )
            except BaseException:
                self.gate.unasked(asking)
                raise
            self.taken += len(popped)
            self.ahead.keep(popped)
            self.gate.prepare(popped)
            admitted = await self.gate.answer(asking, replies)
        except Exception:
            log.warning("worker admission failed jobs=%d", len(batch), exc_info=True)
        finally:
            self._admitted(batch, admitted)
        self._start(admitted)

    async def run_once(self, client: AsyncClient) -> JobOutcome | None:
        """Pop one waiting job (no blocking), run it and settle it as `step` does; None when
        none is waiting. Without `start`: for tests (`redline.testing.run_jobs`)."""
        queue = self._queue or self._bind(client)
        popped = await self.gate.admit(await queue.pop(*self.levels.keys, count=1))
        if not popped:
            await self.runs.events.flush(client)  # an expired job's event
            return None
        outcome = await self._run_one(popped[0])
        self.gate.finish(popped[0])  # as `_done` does for a run of `step`'s
        await self._settle([outcome])
        await self.runs.events.flush(client)
        return outcome

    async def _pop(self, ctx: Context, count: int, block: float) -> list[Delivery]:
        """Up to `count` jobs, waiting up to `block` seconds for one (a seam for other job
        formats: `redline.jobs.sidekiq` fetches Sidekiq's)."""
        if self.gate.waiting:  # a finishing job may wake one that waits for its slot
            block = min(block, WAKE_POLL)
        queues = self.runs.control.active(self.queues)
        if not queues:  # all paused
            await asyncio.sleep(block)
            return []
        keys = self.levels.keys_for(queues)
        # Over the queue's held connection (only this loop pops): a pop's round trip then
        # skips redis-py's pool checkout and reply parsing, a good part of a worker's CPU.
        _, popped = await self.queue.pop_after((), *keys, count=count, block=block)
        return popped  # `step` has the gate admit them

    @property
    def unsettled(self) -> int:
        """Finished jobs waiting to be settled or being settled."""
        return len(self._finished) + len(self._settling)

    def _behind(self) -> bool:
        """Whether `unsettled_limit` finished jobs wait to be settled: then the worker pops
        nothing, so that the backlog, its memory and the leases the heartbeat extends stay
        bounded."""
        return self.unsettled >= self.unsettled_limit

    # -- running jobs ----------------------------------------------------------------------

    def _done(self, running: asyncio.Task[JobOutcome]) -> None:
        delivery = self._runs.pop(running)
        outcome = (
            running.result() if not running.cancelled() else JobOutcome(delivery, returned=True)
        )
        if not outcome.returned:
            self.ahead.ran(outcome.millis / 1000)
        if self.metrics is not None and not outcome.returned:
            self.metrics.observe("jobs", outcome.millis)
            if not outcome.ok:
                self.metrics.count("failed")
        self._finished.append(outcome)
        self._ready.set()
        if self._gate is not None:  # its slot, if capped, goes back with the next admission
            self._gate.finish(delivery)
        self.active -= 1  # the slot is free: the next pop overlaps the settling of this job
        self._slot.set()

    async def _settle_loop(self) -> None:
        """Settle finished jobs together: under load, one ack call covers many jobs."""
        while not (self._closing and not self._finished and not self.runs.events):
            await self._ready.wait()
            self._ready.clear()
            outcomes, self._finished = self._finished, []
            self._settling = outcomes
            try:
                if outcomes:
                    await self._settle(outcomes)
                if self.runs.events:
                    await self.runs.events.flush(self.queue.client)
            except TRANSIENT as exc:  # the leases lapse and the jobs are redelivered
                log.warning("worker could not settle jobs=%d error=%r", len(outcomes), str(exc))
                if self._closing:
                    return  # stopping with the server out of reach: no retry loop
            finally:
                self._settling = []
                self._slot.set()  # the pops held back by `_behind` go on

    async def _heartbeat_loop(self) -> None:
        """Extend the leases of the jobs in hand every third of the lease (cancelled by stop):
        those running or popped ahead, and those finished and not yet settled — a finished job
        frees its slot at once, so under load the pops can outrun the settling, and a lease
        left to lapse there had the job run again (a flood of failing jobs redelivered its
        dead letters over and over)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            unsettled = (o.delivery for o in (*self._settling, *self._finished))
            held = [*self._runs.values(), *self.ahead.held, *unsettled]
            if held:
                with contextlib.suppress(*TRANSIENT):
                    await self.queue.extend(*held)

    async def _check_loop(self) -> None:
        """Extend the concurrency slots this worker holds, and learn which limits have jobs
        waiting for one (`Gate.extend`), every `CHECK` seconds or a third of the lease
        (cancelled by stop)."""
        while True:
            await asyncio.sleep(min(CHECK, self.lease / 3))
            if self.gate.slots.owned:
                with contextlib.suppress(*TRANSIENT):
                    await self.gate.extend()

    # -- settling (jobs.settling) ----------------------------------------------------------

    async def _settle(self, outcomes: Sequence[JobOutcome]) -> None:
        self.completed += await self.settler.settle(outcomes)

    async def _flush_counts(self) -> None:
        await self.settler.flush_counts()

    # -- periodic jobs (scheduled ones: jobs.promoting) ------------------------------------

    async def _enqueue_cron(self, name: str, when: Any) -> None:
        task = self.tasks.get(name)
        await enqueue(self.queue.client, task.options(unique=f"cron:{name}"))


def _declared(tasks: Tasks) -> dict[str, set[int]]:
    """The priorities the tasks declare, by queue (producers' others are read from Redis)."""
    found: dict[str, set[int]] = {}
    for t in tasks.values():
        found.setdefault(t.queue, set()).add(t.priority)
    return found
