"""What a worker knows of the jobs it runs, for cancellation, pause, progress and events:
one object beside the worker's loop, so the loop itself only asks it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from redline.jobs import events
from redline.jobs.context import JobContext, enter, leave
from redline.jobs.control import Control
from redline.jobs.document import JobDocument, JobState
from redline.queue import Delivery

__all__ = ["Runs"]

log = logging.getLogger(__name__)


class Runs:
    """The pause and cancel state of `queues` (`control`), the events to write (`events`,
    none when not `track`), and the jobs running now by id; `wake` asks the worker's settling
    loop to write the events soon."""

    def __init__(self, queues: Sequence[str], track: bool, wake: Callable[[], None]) -> None:
        self.control = Control(queues)
        self.events = events.EventLog(track)
        self.jobs: dict[str, JobContext] = {}
        self._wake = wake

    @contextlib.contextmanager
    def running(self, doc: JobDocument, delivery: Delivery, is_async: bool) -> Iterator[JobContext]:
        """Run the job as the current one (`current_job()`), with its started event."""
        queue, attempt = delivery.key, delivery.deliveries

        def report(fraction: float, message: str) -> None:
            self.events.add(events.progressed(doc.id, queue, doc.task, attempt, fraction, message))
            self._wake()

        job = JobContext(doc.id, queue, doc.task, attempt, report, asyncio.get_running_loop())
        job.run = asyncio.current_task() if is_async else None
        self.jobs[doc.id] = job
        token = enter(job)
        self.events.add(events.started(queue, doc, attempt))
        try:
            yield job
        finally:
            leave(token)
            self.jobs.pop(doc.id, None)

    def cancel(self, job_ids: list[str]) -> None:
        """Cancel the runs of `job_ids` that run here (the control loop's callback, after each
        read). An async run cancelled before and still running is cancelled again: code it
        awaits may have caught the first CancelledError (a library cleaning up) and gone on."""
        for running in self.jobs.values():
            if running.cancelled:
                running.cancel()
        for job_id in job_ids:
            job = self.jobs.get(job_id)
            if job is not None:
                log.info("job cancelled while running id=%s task=%s", job_id, job.task)
                job.cancel()

    def settled(self, delivery: Delivery, doc: JobDocument, state: JobState, error: str) -> None:
        """The events of a settled run (written by the settling loop's next flush)."""
        for pending in events.finished(delivery.key, doc, delivery.deliveries, state, error):
            self.events.add(pending)
