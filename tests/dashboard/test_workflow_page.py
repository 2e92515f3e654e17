"""A workflow on the dashboard, in a real headless Chromium against a real `redline dashboard`:
listed on the jobs page, its page draws the graph and lists the members with their states,
follows a member finishing without a reload, and links to and from its members' jobs."""

from __future__ import annotations

import asyncio
import json

from redline.connection import connect
from redline.jobs import Task, enqueue, workflow
from redline.jobs.document import JobDocument
from redline.jobs.worker import QUEUES_KEY, JobOutcome
from redline.jobs.workflow.progress import settle_members
from redline.queue import Delivery, ReliableQueue
from tests.conftest import needs_tool
from tests.dashboard.browser import Browser
from tests.dashboard.test_browser import SHOTS, SIZES, live_state, text_of
from tests.helpers import wait_for

pytestmark = needs_tool("chromium", "chromium")

Q = "orders"
work = Task.ref("app.work", queue=Q)


async def _popped(queue: ReliableQueue) -> dict[str, tuple[Delivery, JobDocument]]:
    found = {}
    for d in await queue.pop(Q, count=10):
        doc = JobDocument.decode(d.payload, Q)
        assert doc.workflow is not None
        found[doc.workflow["member"]] = (d, doc)
    return found


async def _finish(queue: ReliableQueue, outcomes: list[JobOutcome]) -> None:
    """As a worker settles members: their outcomes reported, then their jobs acked."""
    await settle_members(queue.client, outcomes)
    await queue.ack(*(o.delivery for o in outcomes))


def seed(url: str) -> tuple[str, str]:
    """A diamond with a branch that failed: a done, b failed, c skipped, d running."""

    async def run() -> tuple[str, str]:
        client = connect(url)
        await client.sadd(QUEUES_KEY, Q)
        wf = workflow(
            a=work.s(1),
            b=work.s(),
            c=work.s(),
            d=work.s(),
            depends_on={"b": ["a"], "c": ["b"], "d": ["a"]},
        )
        h = await enqueue(client, wf)
        queue = ReliableQueue(client, lease=600)
        a = (await _popped(queue))["a"]
        await _finish(queue, [JobOutcome(*a, ok=True, value="2")])
        bd = await _popped(queue)
        await _finish(queue, [JobOutcome(*bd["b"], error="ValueError: no", dead=True)])
        await client.aclose()
        return h.id, json.dumps([bd["d"][0].id, bd["d"][1].encode().decode()])

    return asyncio.run(run())


def finish_d(url: str, held: str) -> None:
    async def run() -> None:
        client = connect(url)
        qid, payload = json.loads(held)
        delivery = Delivery(Q, qid, payload.encode(), 1)
        doc = JobDocument.decode(delivery.payload, Q)
        await _finish(ReliableQueue(client), [JobOutcome(delivery, doc, ok=True, value="4")])
        await client.aclose()

    asyncio.run(run())


def state_of(browser: Browser, member: str) -> str | None:
    return text_of(browser, f'#wf-members tr[data-member="{member}"] .st')


def test_a_workflow_from_the_jobs_page_to_its_members(
    redis_url: str, dashboard: str, browser: Browser
) -> None:
    workflow_id, held = seed(redis_url)
    browser.open(f"{dashboard}/jobs?queue={Q}")
    assert text_of(browser, f'#wf-list tr[data-id="{workflow_id}"] .st') == "failed"
    browser.evaluate(f"document.querySelector('#wf-list tr[data-id=\"{workflow_id}\"] a').click()")
    browser.wait_loaded(f"{dashboard}/workflow/{workflow_id}")
    wait_for(lambda: live_state(browser) == "live", timeout=30)
    states = {m: state_of(browser, m) for m in "abcd"}
    assert states == {"a": "done", "b": "failed", "c": "skipped", "d": "dispatched"}
    drawn = browser.evaluate("document.querySelectorAll('#wf-graph g.node').length")
    assert drawn == 4
    assert browser.evaluate("document.querySelectorAll('#wf-graph line').length") == 3
    assert "ValueError: no" in (text_of(browser, "#wf-error") or "")
    for width, height in SIZES:
        browser.screenshot(SHOTS / f"workflow-{width}x{height}.png", width, height)
    browser.evaluate("window.notReloaded = true")
    finish_d(redis_url, held)  # d finishes: the page follows
    wait_for(lambda: state_of(browser, "d") == "done", timeout=30)
    assert text_of(browser, "#wf-done") == "2 / 4"
    assert browser.evaluate("window.notReloaded") is True
    link = '#wf-members tr[data-member="a"] a'
    browser.evaluate(f"document.querySelector('{link}').click()")
    browser.wait_loaded(f"{dashboard}/job/{workflow_id}.a?queue={Q}")
    assert "of workflow" in (text_of(browser, "#job-workflow") or "")
    browser.evaluate("document.querySelector('#job-workflow a').click()")
    browser.wait_loaded(f"{dashboard}/workflow/{workflow_id}")
    assert browser.problems == []
