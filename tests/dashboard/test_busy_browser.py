"""The busy page and the in-flight list's worker column in headless Chromium, fed by a real
`redline worker` process: which worker (host, pid) holds each running job, updated live."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import redis

from redline.jobs import enqueue_sync
from redline.queue import SyncReliableQueue
from tests.conftest import needs_tool
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import start_dashboard
from tests.dashboard.test_browser import SHOTS, SIZES, live_state, text_of
from tests.helpers import spawn, stop, wait_for
from tests.jobs import busy_tasks as b

pytestmark = needs_tool("chromium", "chromium")


def row_text(browser: Browser, job_id: str) -> str | None:
    return text_of(browser, f'#running tr[data-id="{job_id}"] .holder')


def test_busy_page_and_worker_column_follow_a_real_worker(
    redis_url: str, tmp_path: Path, browser: Browser
) -> None:
    client = redis.Redis.from_url(redis_url)
    worker = spawn(
        *("worker", "tests.jobs.busy_tasks", "-q", "b:jobs", "-c", "4", "--redis", redis_url),
        *("--set", "popTimeout=0.5", "--set", "grace=2"),
        log=tmp_path / "worker.log",
    )
    base, dashboard = start_dashboard(redis_url, tmp_path / "dashboard.log")
    holder = f"{socket.gethostname()} pid {worker.pid}"
    try:
        first = enqueue_sync(client, b.hold, redis_url)
        assert first is not None
        wait_for(lambda: len(b.started(client)) == 1, 60)
        browser.open(base + "/busy")
        wait_for(lambda: live_state(browser) == "live", timeout=30)
        wait_for(lambda: row_text(browser, first) == holder, timeout=30)
        browser.evaluate("window.notReloaded = true")
        second = enqueue_sync(client, b.hold, redis_url)  # starts while the page is open
        assert second is not None
        wait_for(lambda: row_text(browser, second) == holder, timeout=30)
        assert browser.evaluate("window.notReloaded") is True
        count = "tr[data-instance] .busy-count"
        assert text_of(browser, count) == "2"
        for width, height in SIZES:
            browser.screenshot(SHOTS / f"busy-{width}x{height}.png", width, height)
        browser.open(base + "/queues/b:jobs?list=inflight")
        wait_for(lambda: live_state(browser) == "live", timeout=30)
        cells = browser.evaluate(
            "JSON.stringify(Array.from(document.querySelectorAll('tr.job')).map(function (r) {"
            " return [r.dataset.id, r.querySelector('.worker').textContent.trim()]; }))"
        )
        assert sorted(json.loads(cells)) == sorted([[first, holder], [second, holder]])
        browser.screenshot(SHOTS / "queue-inflight-1400x900.png", 1400, 900)
        browser.open(base + "/jobs?queue=b:jobs&state=running")
        assert holder in (text_of(browser, f'tr[data-id="{first}"] .worker') or "")
        browser.open(base + "/busy")
        wait_for(lambda: live_state(browser) == "live", timeout=30)
        client.set(b.RELEASE, 1)  # both end: the page says so without a reload
        wait_for(lambda: text_of(browser, "#running .empty") == "No job is running.", 30)
    finally:
        worker_code = stop(worker, timeout=60)
        stop(dashboard)  # type: ignore[arg-type]
    assert worker_code == 0
    info = SyncReliableQueue(client).info("b:jobs")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)
    assert browser.problems == []
