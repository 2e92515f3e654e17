"""The dashboard's lists, actions and live stream, in-process (httpx's ASGI transport) on a
real Redis: search and pages, purge, requeue of lapsed leases, scale, the audit log, the
Server-Sent Events stream and the hour's charts."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from redline.connection import AsyncClient, connect
from redline.dashboard import charts
from redline.dashboard.live import Live, _events, sampler, take_sample
from redline.dashboard.settings import DashboardConfig
from redline.jobs import Task, enqueue, enqueue_in
from redline.queue import ReliableQueue
from redline.runtime.desired import get_desired
from tests.dashboard.test_app import BASE, csrf_of, make
from tests.helpers import wait_for
from tests.servers import ServerProcess, free_port

ORIGIN = {"Origin": BASE}


@pytest.fixture
async def http(aredis: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with make(aredis) as client:
        yield client


def ids_on(page: str) -> list[str]:
    return re.findall(r'<tr class="job" data-id="([^"]*)"', page)


async def test_lists_are_paged_and_searchable(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    queue = ReliableQueue(aredis)
    await queue.push("orders", *[f"item-{i:03}".encode() for i in range(60)])
    first = (await http.get("/queues/orders?list=waiting")).text
    assert len(ids_on(first)) == 50 and "1\u201350 of 60" in first and 'rel="next"' in first
    rest = (await http.get("/queues/orders?list=waiting&start=50")).text
    assert len(ids_on(rest)) == 10 and 'rel="prev"' in rest and 'rel="next"' not in rest
    found = (await http.get("/queues/orders?list=waiting&q=ITEM-04")).text
    assert found.count('<code class="payload">item-04') == 10 and "of 10 matching" in found
    bad = await http.get("/queues/orders?list=nope")
    assert bad.status_code == 400 and "use one of waiting, inflight" in bad.text


async def test_in_flight_delayed_and_scheduled_lists(
    aredis: AsyncClient, http: httpx.AsyncClient
) -> None:
    queue = ReliableQueue(aredis, lease=600)
    await queue.push("orders", b"working", b"later")
    [working] = await queue.pop("orders")
    [later] = await queue.pop("orders")
    await queue.nack(later, delay=300)
    job = await enqueue_in(aredis, 3600, Task.ref("app.report", queue="orders"), 1)
    assert job is not None
    inflight = (await http.get("/queues/orders?list=inflight")).text
    assert "working" in inflight and "lease left" in inflight and "running for" in inflight
    delayed = (await http.get("/queues/orders?list=delayed")).text
    assert "later" in delayed and "due in" in delayed
    scheduled = (await http.get("/queues/orders?list=scheduled")).text
    assert job.id in ids_on(scheduled) and "app.report" in scheduled
    await queue.ack(working)


async def test_purge_asks_for_confirmation_and_is_logged(
    aredis: AsyncClient, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await ReliableQueue(aredis).push("orders", b"a", b"b", b"c")
    form = {"csrf": csrf_of((await http.get("/queues/orders")).text)}
    unconfirmed = await http.post("/queues/orders/purge", data=form, headers=ORIGIN)
    assert unconfirmed.status_code == 400 and "confirm=yes" in unconfirmed.text
    assert (await ReliableQueue(aredis).info("orders")).waiting == 3
    with caplog.at_level(logging.INFO, "redline.dashboard.audit"):
        done = await http.post(
            "/queues/orders/purge", data={**form, "confirm": "yes"}, headers=ORIGIN
        )
    assert done.status_code == 303 and (await ReliableQueue(aredis).info("orders")).waiting == 0
    assert "purge by anonymous@" in caplog.text and "dropped=3" in caplog.text
    overview = (await http.get("/")).text
    assert '<b>purge</b> by <code class="who">anonymous</code> from <code class="addr">' in overview


async def test_requeue_in_flight_whose_lease_lapsed(
    aredis: AsyncClient, http: httpx.AsyncClient
) -> None:
    gone = ReliableQueue(aredis, lease=0.2)  # a consumer that took a message and died
    await gone.push("orders", b"orphan")
    [taken] = await gone.pop("orders")
    await asyncio.sleep(0.3)
    page = (await http.get("/queues/orders?list=inflight")).text
    assert "lapsed" in page and "orphan" in page
    done = await http.post("/queues/orders/recover", data={"csrf": csrf_of(page)}, headers=ORIGIN)
    assert done.status_code == 303
    info = await ReliableQueue(aredis).info("orders")
    assert (info.inflight, info.waiting + info.delayed, info.dead) == (0, 1, 0)  # back, to retry
    assert taken.id


async def test_scale_form_sets_desired_replicas_and_logs_who(
    aredis: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"alice:pw").decode()}
    async with make(aredis, basic_user="alice", basic_password="pw") as http:
        page = await http.get("/services", headers=auth)
        form = {"csrf": csrf_of(page.text), "namespace": "demo:worker", "replicas": "3"}
        with caplog.at_level(logging.INFO, "redline.dashboard.audit"):
            done = await http.post("/services/scale", data=form, headers={**auth, **ORIGIN})
        assert done.status_code == 303 and await get_desired(aredis, "demo:worker") == 3
        assert "scale by alice@" in caplog.text and "replicas=3" in caplog.text
        page = (await http.get("/services", headers=auth)).text
        assert (
            'data-desired-ns="demo:worker">3<' in page and 'data-live-ns="demo:worker">0<' in page
        )
        bad = await http.post(
            "/services/scale", data={**form, "replicas": "-1"}, headers={**auth, **ORIGIN}
        )
        assert bad.status_code == 400 and await get_desired(aredis, "demo:worker") == 3
        no_csrf = {"namespace": "demo:worker", "replicas": "9"}
        refused = await http.post("/services/scale", data=no_csrf, headers={**auth, **ORIGIN})
        assert refused.status_code == 403 and await get_desired(aredis, "demo:worker") == 3


async def test_jobs_filter_by_task(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    send = await enqueue(aredis, Task.ref("app.send", queue="orders"), 1)
    report = await enqueue(aredis, Task.ref("app.report", queue="orders"), 2)
    assert send is not None and report is not None
    page = (await http.get("/jobs?queue=orders&state=waiting&task=SEND&within=60")).text
    assert ids_on(page) == [send.id]
    none = (await http.get("/jobs?queue=orders&state=waiting&task=nothing")).text
    assert ids_on(none) == [] and "of a task like “nothing”" in none


async def test_the_stream_sends_history_then_each_sample(aredis: AsyncClient) -> None:
    await ReliableQueue(aredis).push("orders", b"a")
    live, config = Live(10), DashboardConfig(queues=["orders"], sampleEvery=0.05)
    task = asyncio.create_task(sampler(live, aredis, config))
    stream = _events(live, config.sample_every)
    try:
        async with asyncio.timeout(30):
            assert await anext(stream) == "retry: 2000\n\n"
            assert (await anext(stream)).startswith("event: history\n")
            first = await anext(stream)
            await ReliableQueue(aredis).push("orders", b"b")
            while '"waiting":2' not in (later := await anext(stream)):
                pass
    finally:
        live.stopping.set()
        await task
        await stream.aclose()
    assert first.startswith("event: sample\n") and '"waiting":1' in first and '"ok":true' in first
    assert '"queue:orders"' in later


async def test_a_samples_time_is_when_its_reads_began() -> None:
    """A page takes a sample's counts when the sample is newer than the page: so its ``t``
    must not be later than its reads (a sample whose reads were slow once set a page's fresh
    counts back to what Redis held before the page was rendered)."""
    server = ServerProcess().start()
    client = connect(server.url)
    try:
        server.client().execute_command("CLIENT", "PAUSE", "3000", "ALL")  # the reads wait
        reading = asyncio.create_task(take_sample(client, DashboardConfig(), Live(10)))
        await asyncio.sleep(0)  # it starts, and sends its first read
        meanwhile = time.time()
        assert not reading.done()
        sample = await reading
    finally:
        await client.aclose()
        server.close()
    assert sample["ok"] and sample["t"] < meanwhile


async def test_a_sample_says_when_redis_is_unreachable() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    live, config = Live(10), DashboardConfig(queues=["orders"], sampleEvery=0.05)
    task = asyncio.create_task(sampler(live, client, config))
    try:
        await asyncio.to_thread(wait_for, lambda: live.latest is not None, 30)
    finally:
        live.stopping.set()
        await task
        await client.aclose()
    assert (
        live.latest is not None and live.latest["ok"] is False and "Error" in live.latest["error"]
    )
    assert not live.samples  # a failed sample is no point on the chart


def test_hour_charts_draw_throughput_and_latency() -> None:
    now = time.time()
    hour = [
        {"t": now - 120, "queues": [{"name": "q", "complete": 0}], "metrics": {"m": [0, 0]}},
        {"t": now - 60, "queues": [{"name": "q", "complete": 30}], "metrics": {"m": [10, 50]}},
        {"t": now, "queues": [{"name": "q", "complete": 90}], "metrics": {"m": [20, 150]}},
    ]
    throughput, latency = charts.hour_charts(hour)
    assert [line["name"] for line in throughput.lines] == ["q"]
    assert throughput.y_ticks[-1][1] == "100"  # 60 a minute at most: the axis tops at 100
    assert latency.lines[0]["name"] == "m" and latency.y_ticks[-1][1] == "10"  # 10 mean at most
    assert [label for _, label in throughput.x_ticks] == ["60", "45", "30", "15", "0"]
    assert charts.hour_charts(hour[:1]) == []


async def test_a_jobs_page_and_retrying_a_dead_job(
    aredis: AsyncClient, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    job = await enqueue(aredis, Task.ref("app.charge", queue="orders"), 42)
    assert job is not None
    waiting = (await http.get(f"/job/{job.id}?queue=orders")).text
    assert 'id="job-state">waiting<' in waiting and "42" in waiting and "job-retry" not in waiting
    queue = ReliableQueue(aredis)
    [delivery] = await queue.pop("orders")
    await queue.dead_letter(delivery, reason="Traceback (most recent call last):\nValueError: no")
    dead = (await http.get(f"/job/{job.id}?queue=orders")).text
    assert 'id="job-state">dead<' in dead and "ValueError: no" in dead and "job-retry" in dead
    form = {"csrf": csrf_of(dead)}
    with caplog.at_level(logging.INFO, "redline.dashboard.audit"):
        done = await http.post(f"/job/{job.id}/retry?queue=orders", data=form, headers=ORIGIN)
    assert done.status_code == 303 and done.headers["location"] == f"/job/{job.id}?queue=orders"
    info = await queue.info("orders")
    assert (info.dead, info.waiting + info.delayed) == (0, 1) and "retry job by" in caplog.text
    again = await http.post(f"/job/{job.id}/retry?queue=orders", data=form, headers=ORIGIN)
    assert again.status_code == 409 and "not among the dead letters" in again.text
    unknown = (await http.get("/job/nope?queue=orders")).text
    assert "in none of the lists" in unknown
    assert (await http.get(f"/job/{job.id}")).status_code == 400


async def test_samples_carry_the_new_job_events(aredis: AsyncClient) -> None:
    live, config = Live(10), DashboardConfig(queues=["orders"])
    before = await enqueue(aredis, Task.ref("app.send", queue="orders"), 0)
    first = await take_sample(aredis, config, live)  # the newest there are, to start with
    assert before is not None and [e["job"] for e in first["events"]] == [before.id]
    jobs = [await enqueue(aredis, Task.ref("app.send", queue="orders"), n) for n in (1, 2)]
    second = await take_sample(aredis, config, live)
    got = [(e["job"], e["event"]) for e in second["events"]]
    assert sorted(got) == sorted((j.id, "enqueued") for j in jobs if j is not None)
    assert [e.job for e in live.events] == [e["job"] for e in second["events"]] + [before.id]
    assert first["digest"]["queue:orders"] != second["digest"]["queue:orders"]
    third = await take_sample(aredis, config, live)
    assert third["events"] == [] and third["digest"] == second["digest"]
