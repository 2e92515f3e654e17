"""A flood of failing jobs leaves at most the queue's retention of dead letters and records."""

from __future__ import annotations

import pytest

from redline.connection import AsyncClient
from redline.jobs import JobState, job_keys
from redline.jobs.document import JobDocument
from redline.jobs.job import read_records
from redline.queue import QueueKeys, ReliableQueue
from redline.runtime.metrics import Metrics, read_metrics
from tests.jobs import tasks as t
from tests.jobs.test_worker import Running, until

# 5,000 jobs, not the queue test's 50,000 (tests/queue/test_retention.py): a worker runs
# 400-500 failing jobs a second on the shared 2-core VM, so 50,000 would take minutes. Under
# load (17-25, beside other suites) the 5,000 took 20-125 s: the waits allow 200 + 60 s, and
# the test's timeout is raised to match (pytest's 120 s cut the waits short).
FLOOD, CAP = 5_000, 1_000


async def _all_dead(queue: ReliableQueue) -> bool:
    info = await queue.info("t:poison")
    return info.waiting + info.inflight + info.delayed == 0 and info.dead + info.dropped == FLOOD


async def _dropped_in_metrics(client: AsyncClient) -> bool:
    found = (await read_metrics(client, "t:worker")).get("dropped:t:poison", {})
    return found == {"dead_letters": FLOOD - CAP, "records": FLOOD - CAP}


@pytest.mark.timeout(300)  # its waits' sum and the stop's: at most 290 s (idle: ~10 s)
async def test_a_flood_of_poison_jobs_keeps_the_cap(redis_url: str, aredis: AsyncClient) -> None:
    """Every job fails (no retry): 1,000 dead letters and 1,000 failure records stay, each
    record a dead job's, and the drops of both are counted."""
    queue = ReliableQueue(aredis)
    await queue.set_retention("t:poison", CAP)
    for start in range(0, FLOOD, 1_000):
        docs = [
            JobDocument(t.poison.name, (n,), queue="t:poison") for n in range(start, start + 1_000)
        ]
        await aredis.lpush("t:poison", *[d.encode() for d in docs])
    metrics = Metrics("t:worker")
    running = Running(redis_url, ["t:poison"], concurrency=64, metrics=metrics)
    try:
        await until(lambda: _all_dead(queue), seconds=200)
        await until(lambda: _dropped_in_metrics(aredis), seconds=60)
    finally:
        await running.stop()
    info = await queue.info("t:poison")
    assert info.dead == CAP and info.dropped == FLOOD - CAP
    keys = job_keys("t:poison")
    assert await aredis.hlen(keys.failures) == await aredis.zcard(keys.failed) == CAP
    assert info.records_dropped == FLOOD - CAP
    kept = [d.id for d in await queue.dead("t:poison", count=CAP)]
    assert len(kept) == CAP
    k = QueueKeys.of("t:poison")
    for table in (k.payloads, k.deliveries, k.reasons):
        assert await aredis.hlen(table) == CAP
    ids = [i.decode() for i in await aredis.zrange(keys.failed, 0, -1)]
    records = await read_records(aredis, "t:poison", ids)
    assert {r.state for r in records if r} == {JobState.DEAD} and None not in records
