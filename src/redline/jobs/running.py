"""How one job runs, once a worker holds it: its document decoded, its deliveries and
cancellation checked, its task called (async on the event loop, sync in the thread pool,
within its timeout, inside a span continuing the enqueue's trace when tracing is on) and the
outcome returned for the settling (`jobs.settling`). `Worker` pops and settles around it; the
Sidekiq worker runs Sidekiq's jobs through its own `_outcome`."""

from __future__ import annotations

import abc
import asyncio
import contextvars
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from redline.errors import JobError, JobSerializationError, UnknownTaskError
from redline.jobs.document import JobDocument
from redline.jobs.limits import Gate
from redline.jobs.runs import Runs
from redline.jobs.settling import JobOutcome
from redline.jobs.task import Task, Tasks
from redline.jobs.workflow.progress import kept_result
from redline.queue import Delivery
from redline.runtime.tracing import tracer

__all__ = ["JobRunner"]


def _failure(
    delivery: Delivery, doc: JobDocument | None, task: Task[..., Any] | None, exc: BaseException
) -> JobOutcome:
    text = "".join(traceback.format_exception(exc))
    error = f"{type(exc).__name__}: {exc}"
    dead = task is None or delivery.deliveries > task.retries or isinstance(exc, _TooMany)
    return JobOutcome(delivery, doc, task, error=error, traceback=text, dead=dead)


class _TooMany(JobError):
    """A job delivered more often than its task's max_deliveries."""


class JobRunner(abc.ABC):
    """Runs the jobs of `tasks` one at a time each (`_run_one`); `runs` knows of cancellation
    and events; sync tasks run on `executor`. The subclass gives the `gate` that decoded each
    job's document when it was admitted."""

    def __init__(self, tasks: Tasks, executor: ThreadPoolExecutor, runs: Runs) -> None:
        self.tasks, self.executor, self.runs = tasks, executor, runs

    @property
    @abc.abstractmethod
    def gate(self) -> Gate: ...

    async def _run_one(self, delivery: Delivery) -> JobOutcome:
        started = time.perf_counter()
        outcome = await self._outcome(delivery)
        return msgspec.structs.replace(outcome, millis=1000 * (time.perf_counter() - started))

    async def _outcome(self, delivery: Delivery) -> JobOutcome:
        doc: JobDocument | None = None
        task: Task[..., Any] | None = None
        try:
            doc = self.gate.document(delivery)
            task = self.tasks.get(doc.task)
            if delivery.deliveries > max(task.max_deliveries, task.retries + 1):
                raise _TooMany(
                    f"delivered {delivery.deliveries} times, more than max_deliveries="
                    f"{task.max_deliveries}: its runs never finished (killed workers?)"
                )
            if self.runs.control.is_cancelled(doc.id):
                return JobOutcome(delivery, doc, task, cancelled=True)
            with self.runs.running(doc, delivery, task.is_async) as job:
                value = await self._traced_call(task, doc, delivery)
            if job.cancelled:  # a sync run that finished after all: its result is discarded
                return JobOutcome(delivery, doc, task, cancelled=True)
            kept = kept_result(doc, value)  # workflow members' too: their dependants get it
            return JobOutcome(delivery, doc, task, ok=True, value=kept)
        except asyncio.CancelledError:
            cancelled = doc is not None and self.runs.control.is_cancelled(doc.id)
            return JobOutcome(delivery, doc, task, returned=not cancelled, cancelled=cancelled)
        except (JobSerializationError, UnknownTaskError) as exc:  # not the task's code: no trace
            return JobOutcome(delivery, doc, task, error=f"{type(exc).__name__}: {exc}", dead=True)
        except Exception as exc:
            return _failure(delivery, doc, task, exc)

    async def _traced_call(self, task: Task[..., Any], doc: JobDocument, delivery: Delivery) -> Any:
        """`_call`, inside a span continuing the enqueue's trace when tracing is on."""
        traced = tracer()
        if traced is None:
            return await self._call(task, doc)
        with traced.process(delivery.key, doc.trace, doc.id, delivery.deliveries, doc.task):
            return await self._call(task, doc)

    async def _call(self, task: Task[..., Any], doc: JobDocument) -> Any:
        return await self._invoke(task, doc.args, doc.kwargs)

    async def _invoke(
        self, task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        """Run `task` here: async on the loop, sync in the thread pool; its timeout applies."""
        if task.is_async:
            if task.timeout is None:
                return await task(*args, **kwargs)
            async with asyncio.timeout(task.timeout):
                return await task(*args, **kwargs)
        loop = asyncio.get_running_loop()
        # In the caller's context: a sync task sees the run's span (and any contextvar) too.
        call = contextvars.copy_context().run
        running = loop.run_in_executor(self.executor, lambda: call(task, *args, **kwargs))
        return await asyncio.wait_for(running, task.timeout)
