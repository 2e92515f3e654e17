"""Which worker runs what: the ``busy`` lists that jobs workers keep in their instance records
(`redline.jobs.busy`), read through the service registry (no key scan)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redline.connection import AsyncClient
from redline.jobs.busy import Running, running_of
from redline.scaling import registry
from redline.scaling.registry import Instance

__all__ = ["BusyJob", "Worker", "busy_jobs", "holders", "workers"]


@dataclass(frozen=True)
class Worker:
    """One live worker instance and the jobs it says it runs."""

    instance: Instance
    jobs: list[Running]
    running: int
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.instance.host} pid {self.instance.pid}"

    @property
    def jobs_digest(self) -> list[tuple[str, int]]:
        """What changes when its jobs do (for the live pages' digest)."""
        return [(job.id, job.attempt) for job in self.jobs]


@dataclass(frozen=True)
class BusyJob:
    """One running job and the worker that holds it."""

    job: Running
    worker: Worker

    @property
    def seconds(self) -> float:
        return max(0.0, time.time() - self.job.started)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


async def workers(client: AsyncClient) -> list[Worker]:
    """Every live instance of every namespace registered as a jobs worker."""
    found = []
    for ns, record in (await registry.services(client)).items():
        if record.get("service") != "worker":
            continue
        for inst in await registry.instances(client, ns):
            f = inst.fields
            found.append(
                Worker(inst, running_of(f), _int(f.get("running")), _int(f.get("concurrency")))
            )
    return found


def busy_jobs(found: list[Worker]) -> list[BusyJob]:
    """Every job the `found` workers run, the longest-running first."""
    jobs = [BusyJob(job, w) for w in found for job in w.jobs]
    return sorted(jobs, key=lambda b: b.job.started)


async def holders(client: AsyncClient) -> dict[tuple[str, int], Worker]:
    """(job id, delivery count) -> the worker running that delivery: a delivery count that
    does not match is an older delivery (a dead worker's record not yet expired)."""
    return {(b.job.id, b.job.attempt): b.worker for b in busy_jobs(await workers(client))}
