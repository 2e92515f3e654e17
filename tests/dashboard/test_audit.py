"""The audit trail kept in Redis: real `redline dashboard` processes over one Redis share it,
and it outlives a dashboard's restart; the stream stays within its cap; an action taken on one
dashboard shows on another's open overview without a reload (headless Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import redis

from redline.connection import AsyncClient
from redline.dashboard import audit
from redline.jobs import job_keys
from tests.conftest import needs_tool
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import act, start_dashboard
from tests.dashboard.test_actions import ORIGIN
from tests.dashboard.test_app import csrf_of, make
from tests.dashboard.test_browser import open_live, text_of
from tests.helpers import stop, wait_for


def listed(base: str, path: str = "/") -> list[tuple[str, str, str, str]]:
    """(action, who, from, details) of each action the page lists, newest first."""
    page = httpx.get(base + path, timeout=30).text
    rows = re.findall(
        r'<b>([^<]+)</b> by <code class="who">([^<]+)</code> from <code class="addr">([^<]+)'
        r'</code> <span class="hint">([^<]*)</span>',
        page,
    )
    return [(a, w, f, d.replace("&#39;", "'")) for a, w, f, d in rows]


def test_actions_are_shared_and_survive_a_restart(redis_url: str, tmp_path: Path) -> None:
    first, first_proc = start_dashboard(redis_url, tmp_path / "first.log")
    second, second_proc = start_dashboard(redis_url, tmp_path / "second.log")
    try:
        act(first, "/queues/orders/control/pause")
        act(second, "/queues/orders/control/resume")
        both = [
            ("resume", "anonymous", "127.0.0.1", "queue='orders'"),
            ("pause", "anonymous", "127.0.0.1", "queue='orders'"),
        ]
        assert listed(first) == both and listed(second) == both  # one list, whoever acted
        stop(first_proc)  # type: ignore[arg-type]
        first, first_proc = start_dashboard(redis_url, tmp_path / "first-again.log")
        assert listed(first) == both  # kept in Redis, not in the process
        assert listed(first, "/audit?count=1") == both[:1]
        assert listed(first, "/audit") == both
    finally:
        stop(first_proc)  # type: ignore[arg-type]
        stop(second_proc)  # type: ignore[arg-type]
    client = redis.Redis.from_url(redis_url)
    assert not client.exists(job_keys("orders").paused)
    assert client.xlen(audit.AUDIT_KEY) == 2
    assert "pause by anonymous@127.0.0.1: queue='orders'" in (tmp_path / "first.log").read_text()


async def test_the_stream_keeps_its_cap_newest_first(
    aredis: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "AUDIT_KEPT", 3)
    async with make(aredis) as http:
        form = {"csrf": csrf_of((await http.get("/queues/orders")).text)}
        for action in ("pause", "resume", "pause", "resume", "pause"):
            done = await http.post(f"/queues/orders/control/{action}", data=form, headers=ORIGIN)
            assert done.status_code == 303
        kept = await audit.recent(aredis, 10)
        assert await aredis.xlen(audit.AUDIT_KEY) == 3
        assert [e.action for e in kept] == ["pause", "resume", "pause"]
        assert kept[0].t >= kept[1].t >= kept[2].t and kept[0].who == "anonymous"
        page = (await http.get("/audit?count=2")).text
        assert page.count('<li class="action">') == 2
        assert (await http.get("/audit?count=x")).status_code == 400


@needs_tool("chromium", "chromium")
def test_an_action_on_another_dashboard_shows_without_a_reload(
    redis_url: str, dashboard: str, browser: Browser, tmp_path: Path
) -> None:
    other, other_proc = start_dashboard(redis_url, tmp_path / "other.log")
    try:
        open_live(browser, dashboard + "/")
        assert text_of(browser, "#actions") is None
        act(other, "/queues/orders/control/pause")
        wait_for(lambda: "pause by anonymous" in (text_of(browser, "#actions") or ""), 30)
        assert browser.evaluate("window.notReloaded") is True
    finally:
        stop(other_proc)  # type: ignore[arg-type]
    assert browser.problems == []
