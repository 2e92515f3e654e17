"""The dashboard end to end: a real `redline dashboard` process, a real headless Chromium.

Every main page is opened at a laptop's and a phone's size and saved as a screenshot under
``build/screenshots/`` (for a person to look at); no page logs a console error. Counts change
without a reload; the page says it is reconnecting while Redis is down and goes live again
after; retry, purge and scale are done by clicking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from redline.connection import connect
from redline.jobs import Task, enqueue, job_keys
from redline.jobs.worker import QUEUES_KEY
from redline.queue import QueueKeys, ReliableQueue
from redline.runtime.desired import DESIRED_KEY
from redline.scaling import registry
from redline.scaling.rollout import set_state
from tests.conftest import needs_tool
from tests.dashboard.browser import Browser, Navigating
from tests.dashboard.conftest import act, start_dashboard
from tests.helpers import run, stop, wait_for
from tests.servers import ServerProcess

pytestmark = needs_tool("chromium", "chromium")

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
SIZES = ((1400, 900), (390, 844))


def seed(url: str) -> str:
    """A dead letter, waiting jobs, a delayed message, a service with an instance, metrics."""

    async def run() -> str:
        client = connect(url)
        queue = ReliableQueue(client)
        dead = await enqueue(client, Task.ref("app.charge", queue="orders"), 42, card="visa")
        assert dead is not None
        [delivery] = await queue.pop("orders")
        await queue.dead_letter(
            delivery, reason="Traceback (most recent call last):\nValueError: card declined"
        )
        for n in range(3):
            await enqueue(client, Task.ref("app.send", queue="orders"), f"user{n}@example.com")
        await registry.register_namespace(client, "demo:worker", "worker")
        await client.rpush("demo:worker:ids", "1")  # type: ignore[misc]
        now = str(int(time.time()))
        fields = {"host": "box-1", "pid": "4242", "started": now, "renewed": now}
        await client.hset("demo:worker:1", mapping={**fields, "service": "worker"})  # type: ignore[misc]
        await client.expire("demo:worker:1", 600)
        metric = {"count": 40, "sum": 90_000, "max": 12_000, "histo10": 12, "histo20": 18}
        await client.hset("demo:worker:metrics:done", mapping={**metric, "histo50": 7, "above": 3})  # type: ignore[misc]
        await client.hset(DESIRED_KEY, "demo:worker", 2)
        await client.aclose()
        return dead.id

    return asyncio.run(run())


def activity(url: str) -> None:
    """Work done since the last sample: jobs completed, the metric counted more calls."""
    client = redis.Redis.from_url(url)
    client.hincrby(job_keys("orders").stats, "complete", 120)
    client.hincrby("demo:worker:metrics:done", "count", 60)
    client.hincrby("demo:worker:metrics:done", "sum", 150_000)


def text_of(browser: Browser, selector: str) -> str | None:
    """The element's text; None when there is none, or the page is being replaced."""
    try:
        found = browser.evaluate(
            f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
            " return e ? e.textContent.trim() : null; })()"
        )
    except Navigating:
        return None
    return None if found is None else str(found)


def live_state(browser: Browser) -> str:
    return str(browser.evaluate("document.getElementById('live').dataset.state"))


PAGES = {
    "overview": "/",
    "queue": "/queues/orders",
    "queue-dead": "/queues/orders?list=dead",
    "jobs": "/jobs?queue=orders&state=waiting",
    "services": "/services",
    "metrics": "/metrics",
    "audit": "/audit",
}


def settled(browser: Browser) -> bool:
    """No re-read of the page's regions is in flight (live.js marks them aria-busy)."""
    return browser.evaluate("document.querySelector('[data-region][aria-busy]') === null") is True


def open_live(browser: Browser, url: str) -> None:
    """Open `url`, wait until its stream is live, and mark the page: a reload would lose
    ``window.notReloaded``."""
    browser.open(url)
    wait_for(lambda: live_state(browser) == "live", timeout=30)
    browser.evaluate("window.notReloaded = true")


def test_every_page_at_laptop_and_phone_size(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    dead = seed(redis_url)
    act(dashboard, "/queues/orders/control/pause")  # for the audit list
    act(dashboard, "/queues/orders/control/resume")
    pages = {**PAGES, "job": f"/job/{dead}?queue=orders"}
    for name, path in pages.items():
        browser.open(dashboard + path)
        wait_for(lambda: live_state(browser) == "live", timeout=30)
        if name == "overview":
            activity(redis_url)  # the metrics page draws it in the hour's charts
            wait_for(lambda: text_of(browser, '[data-f="complete"]') == "120", timeout=30)
        for width, height in SIZES:
            browser.screenshot(SHOTS / f"{name}-{width}x{height}.png", width, height)
            assert (SHOTS / f"{name}-{width}x{height}.png").stat().st_size > 5000
    assert browser.problems == []


def test_counts_and_lists_change_without_a_reload(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)
    open_live(browser, dashboard + "/queues/orders")
    assert text_of(browser, "#n-waiting") == "3"
    client = redis.Redis.from_url(redis_url)
    client.lpush("orders", b"fresh-message")  # a plain LPUSH: any producer
    wait_for(lambda: text_of(browser, "#n-waiting") == "4", timeout=30)
    wait_for(lambda: "fresh-message" in (text_of(browser, "#list") or ""), timeout=30)
    assert browser.evaluate("window.notReloaded") is True
    open_live(browser, dashboard + "/")
    client.sadd(QUEUES_KEY, "mail")  # a worker started serving a new queue
    client.lpush("mail", b"hello")
    wait_for(lambda: text_of(browser, '[data-q="mail"][data-f="all_waiting"]') == "1", timeout=30)
    assert browser.evaluate("window.notReloaded") is True
    assert browser.problems == []


def hide(browser: Browser, hidden: bool) -> None:
    """As a browser does when the page's tab goes to the background (or comes back)."""
    flag = "true" if hidden else "false"
    browser.evaluate(
        f"Object.defineProperty(document, 'hidden', {{configurable: true, get: () => {flag}}});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )


def test_a_hidden_page_closes_its_stream_and_catches_up_when_shown(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)
    open_live(browser, dashboard + "/queues/orders")
    hide(browser, True)
    wait_for(lambda: live_state(browser) == "paused", timeout=30)
    redis.Redis.from_url(redis_url).lpush("orders", b"while-hidden")
    hide(browser, False)
    wait_for(lambda: live_state(browser) == "live", timeout=30)
    wait_for(lambda: text_of(browser, "#n-waiting") == "4", timeout=30)
    wait_for(lambda: "while-hidden" in (text_of(browser, "#list") or ""), timeout=30)
    assert browser.evaluate("window.notReloaded") is True
    assert browser.problems == []


@contextlib.contextmanager
def on_own_redis(log: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A Redis server of the test's own (to stop and start) and a dashboard on it."""
    server = ServerProcess().start()
    try:
        base, proc = start_dashboard(server.url, log)
        try:
            yield server, base
        finally:
            stop(proc)  # type: ignore[arg-type]
    finally:
        server.close()


def unexpected(browser: Browser, expected: str) -> list[str]:
    """The browser's problems but those starting with `expected`."""
    return [p for p in browser.problems if not p.startswith(expected)]


def test_the_page_says_it_is_reconnecting_while_redis_is_down(
    tmp_path: Path, browser: Browser
) -> None:
    with on_own_redis(tmp_path / "dashboard.log") as (server, base):
        browser.open(base + "/")
        wait_for(lambda: live_state(browser) == "live", timeout=30)
        # A sample newer than the page makes it re-read itself: one still in flight when Redis
        # stops is answered 503 (the console's error), so the outage starts after it.
        wait_for(lambda: settled(browser), timeout=30)
        server.stop()
        wait_for(lambda: live_state(browser) == "down", timeout=30)
        assert "reconnecting" in (text_of(browser, "#live") or "")
        browser.screenshot(SHOTS / "reconnecting-1400x900.png", 1400, 900)
        server.start()
        server.client().lpush("orders", b"after the restart")
        wait_for(lambda: live_state(browser) == "live", timeout=60)
        wait_for(lambda: text_of(browser, '[data-q="orders"][data-f="all_waiting"]') == "1", 60)
    assert browser.problems == []


def test_the_page_says_it_is_reconnecting_while_the_dashboard_restarts(
    redis_url: str, tmp_path: Path, browser: Browser
) -> None:
    base, proc = start_dashboard(redis_url, tmp_path / "dashboard.log")
    try:
        open_live(browser, base + "/")
        stop(proc)  # type: ignore[arg-type]  # its stop ends the page's stream first
        wait_for(lambda: live_state(browser) == "down", timeout=30)
        assert "connection lost, reconnecting" in (text_of(browser, "#live") or "")
        port = int(base.rsplit(":", 1)[1])
        base, proc = start_dashboard(redis_url, tmp_path / "again.log", port)
        wait_for(lambda: live_state(browser) == "live", timeout=60)  # the EventSource's retry
        assert browser.evaluate("window.notReloaded") is True
    finally:
        stop(proc)  # type: ignore[arg-type]
    refused = f"{base}/live: Failed to load resource: net::ERR_CONNECTION_REFUSED"
    assert unexpected(browser, refused) == []  # the retries while it was down


def test_a_page_opened_while_redis_is_down_says_so_and_loads_once_it_is_back(
    tmp_path: Path, browser: Browser
) -> None:
    with on_own_redis(tmp_path / "dashboard.log") as (server, base):
        server.stop()
        browser.open(base + "/queues/orders")
        assert text_of(browser, "h1") == "Redis unreachable"  # a 503 that says so, not a 500
        wait_for(lambda: live_state(browser) == "down", timeout=30)
        server.start()
        server.client().lpush("orders", b"after the restart")
        wait_for(lambda: text_of(browser, "#n-waiting") == "1", timeout=60)  # loaded by itself
        wait_for(lambda: live_state(browser) == "live", timeout=30)
    said = (
        f"{base}/queues/orders: Failed to load resource: the server responded with a status of 503"
    )
    assert unexpected(browser, said) == []  # only the page's own 503


def test_retry_a_dead_letter_in_chromium(redis_url: str, dashboard: str, browser: Browser) -> None:
    seed(redis_url)
    browser.open(dashboard + "/")
    assert browser.evaluate("document.querySelector('tr[data-queue=\"orders\"]') !== null")
    wait_for(lambda: "orders waiting" in (text_of(browser, "#legend") or ""), timeout=60)
    browser.evaluate("document.querySelector('tr[data-queue=\"orders\"] a').click()")
    browser.wait_loaded(dashboard + "/queues/orders")
    assert text_of(browser, "#n-dead") == "1"
    browser.evaluate("document.getElementById('tab-dead').click()")
    browser.wait_loaded(dashboard + "/queues/orders?list=dead")
    assert "card declined" in browser.evaluate("document.body.innerText")
    browser.evaluate("document.getElementById('retry').click()")
    wait_for(lambda: text_of(browser, "#n-dead") == "0", timeout=30)
    keys = QueueKeys.of("orders")
    client = redis.Redis.from_url(redis_url)
    assert client.zcard(keys.dead) == 0
    assert client.llen(keys.waiting) + client.zcard(keys.delayed) == 4  # 3 jobs and the retried
    assert browser.problems == []


def test_purge_asks_first_then_empties_the_queue(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)
    browser.open(dashboard + "/queues/orders")
    browser.evaluate("window.confirm = function () { return false; }")  # the person says no
    browser.evaluate("document.getElementById('purge').click()")
    client = redis.Redis.from_url(redis_url)
    assert browser.evaluate("location.pathname") == "/queues/orders"
    assert client.llen("orders") == 3
    browser.evaluate("window.asked = ''; window.confirm = function (q) { asked = q; return true; }")
    browser.evaluate("document.getElementById('purge').click()")
    wait_for(lambda: text_of(browser, "#n-waiting") == "0", timeout=30)
    assert client.llen("orders") == 0
    assert browser.problems == []


def test_scale_from_the_services_page(redis_url: str, dashboard: str, browser: Browser) -> None:
    seed(redis_url)
    browser.open(dashboard + "/services")
    form = 'article[data-ns="demo:worker"] form.scale'
    field = f"document.querySelector('{form} input[name=replicas]')"
    browser.evaluate(f"{field}.focus(); {field}.value = '5'")  # as a person types: focus first
    browser.evaluate(f"document.querySelector('{form} button').click()")
    wait_for(lambda: text_of(browser, '[data-desired-ns="demo:worker"]') == "5", timeout=30)
    assert redis.Redis.from_url(redis_url).hget(DESIRED_KEY, "demo:worker") == b"5"
    assert browser.problems == []


def test_a_form_being_filled_in_is_not_replaced_by_a_re_read(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)
    open_live(browser, dashboard + "/services")
    wait_for(lambda: settled(browser), timeout=30)
    browser.hold("*/services")  # the page's re-read of itself stays in flight until released
    redis.Redis.from_url(redis_url).hset("demo:worker:1", "revision", "1")  # a change to show
    wait_for(browser.holding, timeout=30)
    form = 'article[data-ns="demo:worker"] form.scale'
    field = f"document.querySelector('{form} input[name=replicas]')"
    browser.evaluate(f"{field}.focus(); {field}.value = '7'")  # a person starts typing
    browser.release()  # the re-read's answer comes while they type
    wait_for(lambda: settled(browser), timeout=30)
    assert browser.evaluate(f"{field} === document.activeElement && {field}.value") == "7"
    browser.evaluate(f"document.querySelector('{form} button').click()")
    wait_for(lambda: text_of(browser, '[data-desired-ns="demo:worker"]') == "7", timeout=30)
    assert text_of(browser, 'tr.instance td[data-label="revision"]') == "1"
    assert browser.problems == []


def rollout(url: str, state: str) -> None:
    """The state of demo:worker's rollout of revision 1, as the cscale agents write it."""

    async def note() -> None:
        client = connect(url)
        await set_state(client, "demo:worker", 1, state, **{"from": "0"})
        await client.aclose()

    asyncio.run(note())


def test_a_rollout_alone_updates_the_services_page(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)  # demo:worker: one live instance, two desired (neither changes below)
    open_live(browser, dashboard + "/services")
    assert text_of(browser, "tr.rollout") is None
    deployed = run(
        "deploy", "demo:worker", "--set", "batch=20", "--version", "v2", "--redis", redis_url
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    rollout(redis_url, "rolling")  # as the cscale agents note it
    wait_for(lambda: "rolling" in (text_of(browser, "tr.rollout") or ""), timeout=30)
    assert "1 (v2)" in (text_of(browser, "tr.rollout") or "")
    redis.Redis.from_url(redis_url).hset("demo:worker:1", "revision", "1")  # replaced in place
    revision = 'tr.instance td[data-label="revision"]'
    wait_for(lambda: text_of(browser, revision) == "1", timeout=30)
    rollout(redis_url, "complete")
    wait_for(lambda: "complete" in (text_of(browser, "tr.rollout") or ""), timeout=30)
    assert text_of(browser, '[data-live-ns="demo:worker"]') == "1"
    assert text_of(browser, '[data-desired-ns="demo:worker"]') == "2"
    assert browser.evaluate("window.notReloaded") is True
    assert browser.problems == []


def test_keyboard_reaches_the_content_and_every_control(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)
    browser.open(dashboard + "/queues/orders")
    browser.press("Tab", 9)
    assert browser.evaluate("document.activeElement.className") == "skip"
    assert browser.evaluate("getComputedStyle(document.activeElement).left") != "-999px"
    browser.press("Enter", 13)
    wait_for(lambda: browser.evaluate("document.activeElement.id") == "main", timeout=10)
    reached = set()
    for _ in range(12):  # from the content on, Tab walks the page's controls in order
        browser.press("Tab", 9)
        reached.add(browser.evaluate("document.activeElement.id || document.activeElement.name"))
        style = browser.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert style != "none"  # focus is visible
    assert {"recover", "purge", "tab-waiting", "q"} <= reached
    assert browser.problems == []


def test_pause_and_resume_a_queue(redis_url: str, dashboard: str, browser: Browser) -> None:
    seed(redis_url)
    browser.open(dashboard + "/queues/orders")
    client = redis.Redis.from_url(redis_url)
    browser.evaluate("document.getElementById('pause').click()")
    wait_for(lambda: text_of(browser, "#paused") == "paused", timeout=30)
    assert client.exists(job_keys("orders").paused)
    browser.screenshot(SHOTS / "queue-paused-1400x900.png", 1400, 900)
    browser.evaluate("document.getElementById('resume').click()")
    wait_for(lambda: text_of(browser, "#pause") == "Pause", timeout=30)
    assert not client.exists(job_keys("orders").paused)
    assert browser.problems == []


def test_cancel_a_waiting_job_from_its_page(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    seed(redis_url)
    waiting = redis.Redis.from_url(redis_url).lindex("orders", 0)
    assert waiting is not None
    job_id = json.loads(waiting)["id"]
    browser.open(f"{dashboard}/job/{job_id}?queue=orders")
    assert text_of(browser, "#job-state") == "waiting"
    assert "enqueued" in (text_of(browser, "tr.event") or "")
    browser.evaluate("window.confirm = function () { return true; }")
    browser.evaluate("document.getElementById('cancel').click()")
    wait_for(lambda: text_of(browser, "#cancel-requested") is not None, timeout=30)
    client = redis.Redis.from_url(redis_url)
    assert client.zscore(job_keys("orders").cancelled, job_id) is not None
    assert browser.evaluate("document.getElementById('cancel')") is None  # asked once
    assert browser.problems == []
