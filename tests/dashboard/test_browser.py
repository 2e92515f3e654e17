"""The dashboard end to end: a real `redline dashboard` process, a real headless Chromium.

Open the page, see the queue, retry a dead letter with the button, see it move.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.queue import QueueKeys
from tests.conftest import needs_tool
from tests.dashboard.browser import Browser
from tests.helpers import spawn, stop, wait_for
from tests.servers import free_port

pytestmark = needs_tool("chromium", "chromium")


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.fixture
def dashboard(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn(
        "dashboard",
        "--redis",
        redis_url,
        "--port",
        str(port),
        "--queue",
        "orders",
        log=tmp_path / "dashboard.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base + "/"), timeout=60)
        yield base
    finally:
        stop(proc)


@pytest.fixture
def browser() -> Iterator[Browser]:
    made = Browser()
    yield made
    made.close()


def make_dead_letter(url: str) -> None:
    """A message pushed, delivered and dead-lettered, by plain commands through the queue API."""
    import asyncio

    from redline.connection import connect
    from redline.queue import ReliableQueue

    async def run() -> None:
        client = connect(url)
        queue = ReliableQueue(client)
        await queue.push("orders", b'{"task": "app.charge", "args": [42], "kwargs": {}}')
        [delivery] = await queue.pop("orders")
        await queue.dead_letter(delivery, reason="ValueError: card declined")
        await client.aclose()

    asyncio.run(run())


def test_retry_a_dead_letter_in_chromium(redis_url: str, dashboard: str, browser: Browser) -> None:
    make_dead_letter(redis_url)
    browser.open(dashboard + "/")
    assert browser.evaluate("document.querySelector('tr[data-queue=\"orders\"]') !== null")
    wait_for(
        lambda: (
            "orders waiting"
            in browser.evaluate(  # our chart.js drew the samples
                "document.getElementById('legend').textContent"
            )
        ),
        timeout=60,
    )
    browser.evaluate("document.querySelector('tr[data-queue=\"orders\"] a').click()")
    browser.wait_loaded(dashboard + "/queues/orders")
    assert browser.evaluate("document.getElementById('n-dead').textContent") == "1"
    assert "card declined" in browser.evaluate("document.body.innerText")
    browser.evaluate("document.getElementById('retry').click()")
    wait_for(
        lambda: (
            browser.evaluate(
                "document.readyState === 'complete' && document.getElementById('n-dead') && "
                "document.getElementById('n-dead').textContent"
            )
            == "0"
        ),
        timeout=30,
    )
    keys = QueueKeys.of("orders")
    client = redis.Redis.from_url(redis_url)
    assert client.zcard(keys.dead) == 0
    assert client.llen(keys.waiting) + client.zcard(keys.delayed) == 1
