"""`SidekiqWorker`: runs Sidekiq jobs with redline tasks, at least once (docs/sidekiq.md).

The job ``class`` names the task (`Task.sidekiq_class`, default the task's name); ``args`` are
its positional arguments. The worker is redline's `Worker` (concurrency, thread pool, batched
settling, graceful shutdown) with Sidekiq's formats around it:

- fetch: reliable (`fetch.Fetcher`): jobs are moved into in-flight lists of this process;
- success: the job leaves its in-flight list; failure: ``retry`` with Sidekiq's fields and
  backoff while retries remain, else ``dead``; both counted in ``stat:*``;
- a job no task claims: back to ``schedule`` for a few seconds, for the Ruby workers of the
  queue (``unknown="leave"``), or to ``dead`` (``unknown="dead"``); a job that is not JSON, or
  has no class: ``dead`` unchanged, as Sidekiq does;
- heartbeat: the ``processes`` entry Sidekiq's API and Web UI list, every `beat` seconds; the
  Web UI's Quiet and Stop buttons work;
- in the background: due jobs of ``schedule`` and ``retry`` moved to their queues, and the
  in-flight lists of dead processes recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from redline.errors import TRANSIENT, JobError, JobSerializationError, UnknownTaskError
from redline.jobs.sidekiq import poller
from redline.jobs.sidekiq.fetch import Fetched, Fetcher
from redline.jobs.sidekiq.job import DEAD, RETRY, SCHEDULE, SidekiqJob, encode, failed
from redline.jobs.sidekiq.job import retry_delay as sidekiq_delay
from redline.jobs.sidekiq.process import SidekiqProcess
from redline.jobs.task import Task, Tasks
from redline.jobs.worker import JobOutcome, Worker
from redline.queue import Delivery
from redline.runtime import Context
from redline.runtime.metrics import Metrics

__all__ = ["SidekiqSettings", "SidekiqWorker", "tasks_by_class"]

log = logging.getLogger(__name__)

UNKNOWN_CHOICES = ("leave", "dead")


@dataclass(frozen=True)
class SidekiqSettings:
    """`beat`: seconds between heartbeats; `expire`: seconds a heartbeat lives (a killed
    process's jobs are recovered after that); `unknown`: what to do with a job no task claims,
    and `unknown_delay` the seconds it waits in ``schedule`` when left; `max_recoveries`:
    recoveries after which a job that keeps killing its workers goes to ``dead``; `poll`:
    seconds between moves of due scheduled jobs and recoveries; `tag`: shown by the Web UI."""

    beat: float = 5.0
    expire: float = 60.0
    unknown: str = "leave"
    unknown_delay: float = 5.0
    max_recoveries: int = 10
    poll: float = 2.0
    tag: str = ""

    def __post_init__(self) -> None:
        if self.unknown not in UNKNOWN_CHOICES:
            raise JobError(f"unknown={self.unknown!r}: must be one of {UNKNOWN_CHOICES}")
        if not 0 < self.beat < self.expire:
            raise JobError(
                f"beat={self.beat} and expire={self.expire}: a heartbeat must come more often "
                "than it expires (Sidekiq's are 5 and 60 seconds)"
            )


class SidekiqOutcome(JobOutcome, frozen=True):
    """An `JobOutcome` with the job as parsed and the exception its run raised."""

    job: SidekiqJob | None = None
    exc: BaseException | None = None


def tasks_by_class(tasks: Tasks) -> dict[str, Task[..., Any]]:
    """The tasks by the Sidekiq class they run."""
    found: dict[str, Task[..., Any]] = {}
    for item in tasks.values():
        name = item.sidekiq_class or item.name
        if name in found:
            raise JobError(
                f"tasks {found[name].name!r} and {item.name!r} both claim sidekiq class "
                f"{name!r}: give one of them another sidekiq_class="
            )
        found[name] = item
    return found


def _fetched(outcome: JobOutcome) -> Fetched:
    return Fetched(outcome.delivery.key, outcome.delivery.payload)


class SidekiqWorker(Worker):
    """Runs Sidekiq jobs from ``queue:<name>`` for each of `queues` (priority in that order)."""

    name = "sidekiq-worker"

    def __init__(
        self,
        tasks: Tasks,
        queues: Sequence[str] = ("default",),
        concurrency: int = 10,
        threads: int | None = None,
        grace: float = 10.0,
        settings: SidekiqSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        queues = list(queues) or ["default"]
        super().__init__(
            tasks, queues, concurrency, threads, grace=grace, cron=False, metrics=metrics
        )
        self.settings = settings or SidekiqSettings()
        self.by_class = tasks_by_class(tasks)
        self.process = SidekiqProcess(
            self.queues, concurrency, expire=self.settings.expire, tag=self.settings.tag
        )
        self._fetcher: Fetcher | None = None

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            raise JobError("sidekiq worker not started: run it with run_service")
        return self._fetcher

    # -- Hook ------------------------------------------------------------------------------

    async def start(self, ctx: Context) -> None:
        self._fetcher = Fetcher(ctx.redis, self.process.identity, self.queues)
        await self.process.beat(ctx.redis, [])  # listed before its first job is in flight
        self._settler = asyncio.create_task(self._settle_loop())
        self._heartbeat = asyncio.create_task(self._beat_loop(ctx))
        self._background.append(asyncio.create_task(self._poll_loop(ctx)))
        log.info(
            "sidekiq worker started identity=%s queues=%s classes=%s concurrency=%d",
            self.process.identity,
            self.queues,
            sorted(self.by_class),
            self.concurrency,
        )

    async def stop(self, ctx: Context) -> None:
        """The worker's stop (grace, then running jobs back to their queue), then leave
        ``processes`` and give back anything still in this process's in-flight lists."""
        await super().stop(ctx)
        with contextlib.suppress(*TRANSIENT):
            await self.process.unregister(ctx.redis)
            identity = self.process.identity
            await poller.recover(ctx.redis, identity, 0, self.settings.max_recoveries, identity)

    # -- fetching and running --------------------------------------------------------------

    async def _pop(self, ctx: Context, count: int, block: float) -> list[Delivery]:
        if self.process.quiet:  # the Web UI's Quiet: run what is in hand, take nothing new
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), block)
            return []
        fetched = await self.fetcher.fetch(ctx, count, block)
        started = str(int(time.time()))  # a Delivery's id here: when it started (run_at)
        popped = [Delivery(f.queue, started, f.raw, 1) for f in fetched]
        if popped and self.process.quiet:
            # Quiet came while the fetch was out (blocked on an empty queue): what it took
            # goes back to its queue unrun, as Sidekiq's own processor requeues a job it
            # fetched after quiet. Counted as `step` counts a pop, for `_give_back` to uncount.
            self.taken += len(popped)
            self._give_back(popped)
            return []
        return popped

    async def _outcome(self, delivery: Delivery) -> JobOutcome:
        try:
            job = SidekiqJob.parse(delivery.payload)
        except JobSerializationError as exc:
            return SidekiqOutcome(delivery, error=str(exc), exc=exc, dead=True)
        task = self.by_class.get(job.class_name)
        if task is None:
            error = f"no task of this worker claims sidekiq class {job.class_name!r}"
            return SidekiqOutcome(delivery, job=job, error=error, exc=UnknownTaskError(error))
        try:
            await self._invoke(task, job.args, {})
        except asyncio.CancelledError:
            return SidekiqOutcome(delivery, job=job, task=task, returned=True)
        except Exception as exc:
            text = "".join(traceback.format_exception(exc))
            error = f"{type(exc).__name__}: {exc}"
            return SidekiqOutcome(
                delivery, job=job, task=task, error=error, traceback=text, exc=exc
            )
        return SidekiqOutcome(delivery, job=job, task=task, ok=True)

    # -- settling --------------------------------------------------------------------------

    async def _settle(self, outcomes: Sequence[JobOutcome]) -> None:
        done = [o for o in outcomes if o.ok]
        if done:
            await self.fetcher.ack([_fetched(o) for o in done])
            self.completed += len(done)
            self.process.processed += len(done)
        for outcome in outcomes:
            if outcome.returned:
                await self.fetcher.requeue(_fetched(outcome))
            elif not outcome.ok and isinstance(outcome, SidekiqOutcome):
                await self._settle_failure(outcome)

    async def _settle_failure(self, outcome: SidekiqOutcome) -> None:
        job, fetched, now = outcome.job, _fetched(outcome), time.time()
        if job is None:  # not a job at all: the morgue, unchanged (Sidekiq's way)
            log.warning("sidekiq: job is not a job, moved to dead error=%r", outcome.error)
            self._count_failed(await self.fetcher.move_to(fetched, DEAD, fetched.raw, now))
        elif outcome.task is None:
            await self._unclaimed(outcome, job, fetched, now)
        else:
            await self._retry_or_bury(outcome, outcome.task, job, fetched, now)

    async def _unclaimed(
        self, outcome: SidekiqOutcome, job: SidekiqJob, fetched: Fetched, now: float
    ) -> None:
        if self.settings.unknown == "leave":
            log.debug("sidekiq: class %s is not ours: left for others", job.class_name)
            when = now + self.settings.unknown_delay
            await self.fetcher.move_to(fetched, SCHEDULE, fetched.raw, when)
            return
        log.warning("sidekiq: job moved to dead jid=%s error=%r", job.jid, outcome.error)
        fields = failed(job, outcome.exc or UnknownTaskError(outcome.error), now)
        self._count_failed(await self.fetcher.move_to(fetched, DEAD, encode(fields), now))

    async def _retry_or_bury(
        self,
        outcome: SidekiqOutcome,
        task: Task[..., Any],
        job: SidekiqJob,
        fetched: Fetched,
        now: float,
    ) -> None:
        exc = outcome.exc or JobError(outcome.error)
        fields = failed(job, exc, now)
        count = int(fields["retry_count"])
        if count < job.max_retries(task.retries):
            delay = task.sidekiq_retry_in(count, exc) if task.sidekiq_retry_in else None
            when = now + (sidekiq_delay(count) if delay is None else delay)
            log.info(
                "sidekiq: job failed jid=%s class=%s retry_count=%d retry_in=%.1fs error=%r",
                job.jid, job.class_name, count, when - now, outcome.error,
            )  # fmt: skip
            settled = await self.fetcher.move_to(fetched, RETRY, encode(fields), when)
        elif job.fields.get("retry") is False or job.fields.get("dead") is False:
            log.warning("sidekiq: job failed, not kept (retry/dead false) job=%s", encode(fields))
            await self.fetcher.ack([fetched])
            settled = True
        else:
            log.warning("sidekiq: job moved to dead jid=%s error=%r", job.jid, outcome.error)
            settled = await self.fetcher.move_to(fetched, DEAD, encode(fields), now)
        self._count_failed(settled)

    def _count_failed(self, settled: bool) -> None:
        if settled:
            self.process.processed += 1
            self.process.failed += 1

    async def _flush_counts(self) -> None:
        if self._fetcher is not None:
            await self.process.add_counts(self.fetcher.client)

    # -- background ------------------------------------------------------------------------

    def _running(self) -> list[tuple[str, bytes, int]]:
        return [(d.key, d.payload, int(d.id)) for d in self._runs.values()]

    async def _beat_loop(self, ctx: Context) -> None:
        """Heartbeat every `beat` seconds (cancelled by stop, after the running jobs ended)."""
        while True:
            await asyncio.sleep(self.settings.beat)
            try:
                signal = await self.process.beat(ctx.redis, self._running())
            except TRANSIENT as exc:
                log.warning("sidekiq: heartbeat failed error=%r", str(exc))
                continue
            if signal == "TERM":
                log.info("sidekiq: stop requested through Redis (Web UI)")
                ctx.stopping.set()
            elif signal == "TSTP":
                log.info("sidekiq: quiet requested through Redis (Web UI): no new jobs")
                self.process.quiet = True

    async def _poll_loop(self, ctx: Context) -> None:
        """Move due scheduled and retried jobs to their queues; recover dead processes' jobs."""
        expire, most = self.settings.expire, self.settings.max_recoveries
        grace = expire + 2 * max(ctx.config.pop_timeout, 5.0)
        while not ctx.stopping.is_set():
            try:
                await poller.promote(ctx.redis)
                await poller.recover(ctx.redis, self.process.identity, grace, most)
            except (*TRANSIENT, RedisError) as exc:  # a key of the wrong type: said, and retried
                log.warning("sidekiq: could not move due jobs or recover error=%r", str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), self.settings.poll)
