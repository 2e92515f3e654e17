"""The settings of `redline worker` and of `redline worker --sidekiq` (validated once, at the
edge; every field also a `REDLINE_<FIELD>` variable and a `--set`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from redline.config import ServiceConfig

__all__ = ["SidekiqWorkerConfig", "WorkerConfig"]


class WorkerConfig(ServiceConfig):
    """`redline worker` settings."""

    pop_timeout: float = Field(2, alias="popTimeout", gt=0, description="seconds a pop blocks")
    queues: list[str] = Field(default_factory=list, description="queues (default: the tasks')")
    concurrency: int = Field(16, gt=0, description="jobs run at once")
    threads: int | None = Field(
        None, gt=0, description="threads for sync tasks (default: concurrency)"
    )
    lease: float = Field(30, gt=0, description="seconds a job is owned before redelivery")
    grace: float = Field(10, ge=0, description="seconds in-flight jobs get to finish at shutdown")
    cron: bool = Field(True, description="take part in running the tasks' cron schedules")
    events: bool = Field(
        True, description="record job events and status (redline jobs events / job.status())"
    )
    max_jobs: int | None = Field(
        None, alias="maxJobs", gt=0, description="exit after this many jobs (to be replaced)"
    )
    max_memory: float | None = Field(
        None, alias="maxMemory", gt=0, description="exit above this many MB resident"
    )


class SidekiqWorkerConfig(WorkerConfig):
    """`redline worker --sidekiq` settings: the worker's, plus Sidekiq's process conventions."""

    concurrency: int = Field(10, gt=0, description="jobs run at once (Sidekiq's default 10)")
    beat: float = Field(5, gt=0, description="seconds between heartbeats (Sidekiq's: 5)")
    process_expire: float = Field(
        60,
        alias="processExpire",
        gt=0,
        description="seconds a heartbeat lives; a killed worker's jobs are recovered after it",
    )
    unknown_class: Literal["leave", "dead"] = Field(
        "leave",
        alias="unknownClass",
        description="a job no task claims: leave it for Ruby workers, or move it to dead",
    )
    unknown_delay: float = Field(
        5, alias="unknownDelay", gt=0, description="seconds a left job waits in schedule"
    )
    max_recoveries: int = Field(
        10,
        alias="maxRecoveries",
        gt=0,
        description="recoveries after which a job whose runs keep killing workers goes to dead",
    )
    poll_interval: float = Field(
        2, alias="pollInterval", gt=0, description="seconds between moves of due scheduled jobs"
    )
    tag: str = Field("", description="the tag Sidekiq's Web UI shows for this process")

    @model_validator(mode="after")
    def _beats_before_expiry(self) -> SidekiqWorkerConfig:
        if self.beat >= self.process_expire:
            raise ValueError(
                f"beat ({self.beat}) must be below processExpire ({self.process_expire}): a "
                "heartbeat must come before the last one expires (Sidekiq's: 5 and 60)"
            )
        return self
