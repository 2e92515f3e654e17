"""The queue page shows jobs waiting by priority (each a link to its own queue) and expiries."""

from __future__ import annotations

from redline.connection import AsyncClient
from redline.jobs import Task, enqueue_many, job_keys
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
