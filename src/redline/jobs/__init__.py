"""Background jobs on the ReliableQueue: `@task`, `enqueue`, a worker, cron, results.

See docs/jobs.md for the job document's format and the guarantees.
"""

from __future__ import annotations

from redline.jobs.bulk import enqueue_many, enqueue_many_sync
from redline.jobs.context import JobContext, current_job, progress
from redline.jobs.control import (
    cancel_job,
    cancel_job_sync,
    pause_queue,
    pause_queue_sync,
    resume_queue,
    resume_queue_sync,
)
from redline.jobs.cron import CronSchedule, CronScheduler
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.events import JobEvent, job_events
from redline.jobs.job import Job, JobRecord, enqueue, enqueue_at, enqueue_in, enqueue_sync
from redline.jobs.status import JobStatus, job_status
from redline.jobs.task import Signature, Task, Tasks, load_tasks, task
from redline.jobs.workflow import (
    MemberState,
    SyncWorkflowHandle,
    WorkflowHandle,
    WorkflowState,
    WorkflowStatus,
    chain,
    chord,
    group,
    workflow,
)

cancel_sync = cancel_job_sync

__all__ = [
    "CronSchedule",
    "CronScheduler",
    "Job",
    "JobContext",
    "JobDocument",
    "JobEvent",
    "JobRecord",
    "JobState",
    "JobStatus",
    "MemberState",
    "Signature",
    "SyncWorkflowHandle",
    "Task",
    "Tasks",
    "WorkflowHandle",
    "WorkflowState",
    "WorkflowStatus",
    "cancel_job",
    "cancel_job_sync",
    "cancel_sync",
    "chain",
    "chord",
    "current_job",
    "enqueue",
    "enqueue_at",
    "enqueue_in",
    "enqueue_many",
    "enqueue_many_sync",
    "enqueue_sync",
    "group",
    "job_events",
    "job_keys",
    "job_status",
    "load_tasks",
    "pause_queue",
    "pause_queue_sync",
    "progress",
    "resume_queue",
    "resume_queue_sync",
    "task",
    "workflow",
]
