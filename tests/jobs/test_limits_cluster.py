"""Each of priorities, caps, rate limits, expiry, replace, debounce and bulk enqueue on the
local 3-node cluster: every key of one operation in the queue's slot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redline.connection import AsyncClient
from redline.jobs import JobState, Tasks, enqueue, enqueue_many
from redline.jobs.job import read_records
from redline.jobs.priority import priority_key
from tests.jobs import limit_tasks as lt
from tests.jobs.running import WorkerRunning, until

pytestmark = pytest.mark.cluster


async def test_the_features_on_a_cluster(cluster: Any, acluster: AsyncClient, prefix: str) -> None:
    queue = "{" + prefix + "}:jobs"
    url = cluster.url
    made = {
        name: getattr(lt, name).options(queue=queue)
        for name in ("capped", "keyed", "prio", "fleeting", "latest", "settled", "bulked")
    }
    t = Tasks(made.values())
    for key in lt.RECORDS:  # the cluster is shared by the session's tests: start clean
        await acluster.delete(key)
    await enqueue(acluster, made["fleeting"].options(expires=0.1), url, 1)
    await asyncio.sleep(0.3)  # expired before any worker starts
    low = await enqueue_many(acluster, made["prio"], [((url, "low"), {})] * 20)
    await enqueue_many(acluster, made["prio"].options(priority=9), [((url, "high"), {})] * 5)
    assert all(low) and await acluster.llen(priority_key(queue, 9)) == 5
    for value in (1, 2):
        await enqueue(acluster, made["latest"], url, "k", value)
        await enqueue(acluster, made["settled"], url, "d", value)
    bulk = await enqueue_many(acluster, made["bulked"], [((url, n), {}) for n in range(12)])
    assert sum(1 for j in bulk if j) == 10
    await enqueue_many(acluster, made["capped"], [((url, n, 0.05), {}) for n in range(12)])
    await enqueue_many(acluster, made["keyed"], [((url, "a", n), {}) for n in range(4)])
    running = WorkerRunning(t, url, [queue], concurrency=8, grace=10)
    try:
        await until(lambda: _ran(acluster), 60)
    finally:
        await running.stop()
    order = [tag.decode() for tag in await acluster.lrange("l:order", 0, -1)]
    # The 5 priority-9 jobs are taken by the first pop (up to 8: the rest of it from the
    # priority-0 list); the 8 run on threads at once, so their order among themselves is the
    # threads' race, but none of the remaining priority-0 backlog starts before them.
    assert order[:8].count("high") == 5 and order.count("low") == 20
    assert max(int(n) for n in await acluster.lrange("l:seen", 0, -1)) == lt.CAP
    assert await acluster.scard("l:started") == 3  # 3 a minute; the 4th waits, delayed
    ran = await acluster.lrange("l:ran", 0, -1)
    assert sorted(ran) == [b"2", b"2"]  # the replaced and the debounced: the last only
    stats = await acluster.hget("{" + prefix + "}:jobs:job-stats", "expired")  # type: ignore[misc]
    assert stats == b"1"
    records = await acluster.lrange("{" + prefix + "}:jobs:job-recent", 0, -1)
    assert records, "the expired job is recorded"
    [record] = await read_records(acluster, queue, [records[-1].decode()])
    assert record is not None and record.state is JobState.EXPIRED


async def _ran(client: AsyncClient) -> bool:
    done = await client.scard("l:done")  # type: ignore[misc]
    ran = await client.llen("l:ran")  # type: ignore[misc]
    order = await client.llen("l:order")  # type: ignore[misc]
    started = await client.scard("l:started")  # type: ignore[misc]
    return bool(done == 12 and ran == 2 and order == 25 and started == 3)
