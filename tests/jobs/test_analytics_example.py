"""The analytics example: hits accepted while no worker runs, then drained into SQLite by one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from examples.analytics import api, summary
from redline.cli.worker import WorkerConfig
from redline.jobs import load_tasks
from redline.jobs.worker import Worker
from redline.runtime import run_service


async def test_hits_wait_for_the_worker_then_land_in_sqlite(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_DB", str(tmp_path / "hits.sqlite3"))
    app = api.create_app(redis_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        for n in range(30):
            reply = await c.get(
                "/hit", params={"url": f"/page/{n % 3}"}, headers={"user-agent": "test"}
            )
            assert reply.status_code == 202
        assert (await c.get("/hit")).status_code == 400
    assert summary.hits_per_url() == []  # no worker yet: every hit waits on the queue

    worker = Worker(load_tasks("examples.analytics.tasks"), concurrency=4, cron=False)
    stopping = asyncio.Event()
    running = asyncio.create_task(
        run_service(worker, WorkerConfig(redis=redis_url, popTimeout=0.2), [worker], stopping)
    )
    async with asyncio.timeout(60):
        while sum(n for _, n in summary.hits_per_url()) < 30:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    stopping.set()
    await running
    assert summary.hits_per_url() == [("/page/0", 10), ("/page/1", 10), ("/page/2", 10)]
    page = await summary.summary(None)  # type: ignore[arg-type]
    assert b"<td>/page/0</td><td>10</td>" in page.body
    await app.state.redis.aclose()
