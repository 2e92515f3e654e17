"""The current use of limits, as a real worker process fills them: `redline jobs limits`,
`redline status` and the dashboard's queue page read the same numbers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import redis

from redline.connection import connect
from redline.dashboard.app import create_app
from redline.dashboard.settings import DashboardConfig
from redline.jobs import enqueue_sync
from redline.queue import SyncReliableQueue
from tests.helpers import invoke, spawn, stop, wait_for
from tests.jobs import busy_tasks as b

CAPPED, PACED = "tests.jobs.busy_tasks.capped", "tests.jobs.busy_tasks.paced"


def limits(url: str, *args: str) -> dict[tuple[str, str | None], dict[str, object]]:
    done = invoke("jobs", "limits", *args, "--json", "--redis", url)
    assert done.returncode == 0, done.stderr
    uses = [json.loads(line) for line in done.stdout.splitlines()]
    return {(u["task"], u["key"]): u for u in uses}


def queue_page(url: str, name: str) -> str:
    async def get() -> str:
        client = connect(url)
        app = create_app(DashboardConfig(), client=client)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dash.test") as http:
            page = (await http.get(f"/queues/{name}")).text
        await client.aclose()
        return page

    return asyncio.run(get())


def test_slots_held_and_starts_in_the_window_are_shown_everywhere(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    log = tmp_path / "worker.log"
    worker = spawn(
        *("worker", "tests.jobs.busy_tasks", "-q", "b:limited", "-c", "8", "--redis", redis_url),
        *("--set", "lease=5", "--set", "popTimeout=0.5", "--set", "grace=2"),
        log=log,
    )
    try:
        assert all(enqueue_sync(client, b.capped, redis_url) for _ in range(5))
        for customer in ("acme", "acme", "acme", "acme", "zed"):
            assert enqueue_sync(client, b.paced, redis_url, customer)
        wait_for(lambda: sorted(client.lrange("b:paced", 0, -1)) == [b"acme"] * 3 + [b"zed"], 60)
        wait_for(lambda: len(b.started(client)) == 2, 60)  # the cap of two holds the rest
        wait_for(lambda: limits(redis_url, "b:limited")[(CAPPED, None)]["waiting"] != 0, 60)
        uses = limits(redis_url, "b:limited")
        capped = uses[(CAPPED, None)]
        assert (capped["kind"], capped["used"], capped["limit"]) == ("concurrency", 2, 2)
        acme, zed = uses[(PACED, "acme")], uses[(PACED, "zed")]
        assert (acme["kind"], acme["used"], acme["limit"], acme["period_ms"]) == (
            "rate",
            3,
            3,
            60_000,
        )
        assert (zed["used"], zed["limit"]) == (1, 3) and len(uses) == 3
        shown = invoke("jobs", "limits", "--redis", redis_url)  # every queue workers serve
        assert f"b:limited {CAPPED} concurrency 2/2 running waiting=" in shown.stdout
        assert f"b:limited {PACED} key=acme rate 3/3 per 60s" in shown.stdout
        status = invoke("status", "--redis", redis_url, env={"COLUMNS": "200"})
        assert status.returncode == 0 and "job limits" in status.stdout
        assert "capped" in status.stdout and "acme" in status.stdout
        page = queue_page(redis_url, "b:limited")
        assert f'data-kind="concurrency" data-task="{CAPPED}" data-key=""' in page
        assert '<b class="used">2</b> / 2' in page and '<b class="used">3</b> / 3' in page
        client.set(b.RELEASE, 1)
        wait_for(lambda: len(b.started(client)) == 5, 60)
        wait_for(lambda: SyncReliableQueue(client).info("b:limited").inflight == 0, 60)
        # all given back: a held slot goes back HOLD after its last job, in a task of its own
        wait_for(lambda: limits(redis_url, "b:limited")[(CAPPED, None)]["used"] == 0, 60)
    finally:
        code = stop(worker, timeout=60)
    assert code == 0, log.read_text()
    assert len({job for job, _, _ in b.started(client)}) == 5  # each capped job ran once
    info = SyncReliableQueue(client).info("b:limited")
    # the fourth start for acme waits for the next window (not an attempt: delayed)
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 1, 0)
