"""Background jobs on the ReliableQueue: `@task`, `enqueue`, a worker, cron, results.

See docs/jobs.md for the job document's format and the guarantees.
"""

from __future__ import annotations

from redline.jobs.bulk import enqueue_many, enqueue_many_sync
from redline.jobs.cron import CronSchedule, CronScheduler
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.job import Job, JobRecord, enqueue, enqueue_at, enqueue_in, enqueue_sync
from redline.jobs.task import Task, Tasks, load_tasks, task

__all__ = [
    "CronSchedule",
    "CronScheduler",
    "Job",
    "JobDocument",
    "JobRecord",
    "JobState",
    "Task",
    "Tasks",
    "enqueue",
    "enqueue_at",
    "enqueue_in",
    "enqueue_many",
    "enqueue_many_sync",
    "enqueue_sync",
    "job_keys",
    "load_tasks",
    "task",
]
