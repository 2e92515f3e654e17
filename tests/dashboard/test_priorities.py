"""The queue page shows jobs waiting by priority (each a link to its own queue) and expiries."""

from __future__ import annotations

from redline.connection import AsyncClient
from redline.jobs import Task, enqueue_many, job_keys
from redline.jobs.priority import priority_key
from redline.queue import ReliableQueue
from tests.dashboard.test_app import make


async def test_the_queue_page_shows_priorities_and_expired(aredis: AsyncClient) -> None:
    urgent = Task.ref("app.urgent", queue="orders", priority=9)
    await enqueue_many(aredis, urgent, [((n,), {}) for n in range(2)])
    await enqueue_many(aredis, urgent.options(priority=4), [((1,), {})])
    await aredis.hincrby(job_keys("orders").stats, "expired", 3)  # type: ignore[misc]
    async with make(aredis) as http:
        page = (await http.get("/queues/orders")).text
    assert '<b id="n-priority-9">2</b>' in page and '<b id="n-priority-4">1</b>' in page
    assert page.index("n-priority-9") < page.index("n-priority-4")
    assert '<a href="/queues/%7Borders%7D%3Apriority%3A9">9</a>' in page
    assert 'id="n-expired" data-q="orders" data-f="expired">3<' in page
    async with make(aredis) as http:
        level = await http.get("/queues/{orders}:priority:9")
    assert level.status_code == 200 and 'id="n-waiting" data-q="{orders}:priority:9"' in level.text
    assert 'data-f="waiting">2</dd>' in level.text


async def test_the_overview_counts_every_priority_in_flight_and_dead(aredis: AsyncClient) -> None:
    urgent = Task.ref("app.urgent", queue="orders", priority=9)
    await enqueue_many(aredis, urgent, [((n,), {}) for n in range(3)])
    await enqueue_many(aredis, Task.ref("app.plain", queue="orders"), [((1,), {})])
    queue = ReliableQueue(aredis)
    running, dying = await queue.pop(priority_key("orders", 9), count=2)
    await queue.dead_letter(dying, reason="broken")
    async with make(aredis) as http:
        page = (await http.get("/")).text
    cell = 'data-q="orders" data-f="{}">{}<'
    assert cell.format("all_waiting", 2) in page  # one at 9, one at 0
    assert cell.format("all_inflight", 1) in page and running.key == priority_key("orders", 9)
    # the dead letter is at priority 9: the link goes to the page that lists each priority's
    assert 'data-f="all_dead" data-alert="1"><a class="dead" href="/queues/orders">1<' in page
    async with make(aredis) as http:
        page = (await http.get("/queues/orders")).text
    assert '<b id="n-all-inflight">1</b>' in page and '<b id="n-all-dead">1</b>' in page
    assert 'id="n-inflight" data-q="orders" data-f="inflight">0<' in page  # this list's own
