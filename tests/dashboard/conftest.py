"""What the dashboard's browser tests share: a real `redline dashboard` process and one
headless Chromium per test."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dashboard.browser import Browser
from tests.helpers import spawn, stop, wait_for
from tests.servers import free_port


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def start_dashboard(redis_url: str, log: Path, port: int | None = None) -> tuple[str, object]:
    """A `redline dashboard` on `port` (a free one), sampling every 0.5 s: its base URL and
    process."""
    port = port or free_port()
    proc = spawn(
        "dashboard",
        "--redis",
        redis_url,
        "--port",
        str(port),
        "--queue",
        "orders",
        "--set",
        "sampleEvery=0.5",
        log=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base + "/"), timeout=60)
    except BaseException:
        stop(proc)
        raise
    return base, proc


def act(base: str, path: str) -> None:
    """POST the pause/resume form of queue `orders` as a person would: page, cookie, token."""
    with httpx.Client(base_url=base, timeout=30) as http:
        page = http.get("/queues/orders")
        done = http.post(
            path,
            data={"csrf": re.findall(r'name="csrf" value="([^"]+)"', page.text)[0]},
            headers={"Origin": base},
        )
        assert done.status_code == 303, done.text


@pytest.fixture
def dashboard(redis_url: str, tmp_path: Path) -> Iterator[str]:
    base, proc = start_dashboard(redis_url, tmp_path / "dashboard.log")
    try:
        yield base
    finally:
        stop(proc)  # type: ignore[arg-type]


@pytest.fixture
def browser() -> Iterator[Browser]:
    made = Browser()
    yield made
    made.close()
