"""The dashboard in-process through httpx's ASGI transport: pages, auth, CSRF, actions."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from redline.config import load_config
from redline.connection import AsyncClient, connect
from redline.dashboard.app import create_app
from redline.dashboard.settings import DashboardConfig
from redline.errors import ConfigError
from redline.jobs import Task, enqueue, job_keys
from redline.jobs.control import is_paused
from redline.queue import ReliableQueue
from redline.scaling import registry
from redline.scaling.rollout import set_state
from tests.servers import free_port

BASE = "http://dash.test"


def make(aredis: AsyncClient, **fields: Any) -> httpx.AsyncClient:
    config = DashboardConfig(queues=["orders"], **fields)
    app = create_app(config, client=aredis)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def http(aredis: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with make(aredis) as client:
        yield client


async def dead_letter(aredis: AsyncClient, payload: bytes = b"broken") -> str:
    queue = ReliableQueue(aredis)
    await queue.push("orders", payload)
    [delivery] = await queue.pop("orders")
    await queue.dead_letter(delivery, reason="Traceback (most recent call last):\nValueError: x")
    return delivery.id


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_off_localhost_needs_auth() -> None:
    with pytest.raises(ConfigError, match=r"'0\.0\.0\.0' is reachable from other machines"):
        load_config(DashboardConfig, sets=["host=0.0.0.0"])
    assert load_config(DashboardConfig, sets=["host=0.0.0.0", "token=s3cret"]).auth_required
    with pytest.raises(ConfigError, match="basicUser and basicPassword go together"):
        load_config(DashboardConfig, sets=["basicUser=admin"])


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Bearer s3cret", 200),
        ("Basic " + base64.b64encode(b"anyone:s3cret").decode(), 200),
        ("Basic " + base64.b64encode(b"admin:pw").decode(), 200),
        ("Basic " + base64.b64encode(b"admin:nope").decode(), 401),
        ("Basic !!!", 401),
    ],
)
async def test_auth(aredis: AsyncClient, header: str | None, status: int) -> None:
    async with make(aredis, token="s3cret", basic_user="admin", basic_password="pw") as http:
        response = await http.get("/", headers={"Authorization": header} if header else {})
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_overview_shows_queue_counts(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    await dead_letter(aredis)
    await ReliableQueue(aredis).push("orders", b"a", b"b")
    page = (await http.get("/")).text
    row = re.search(r'<tr data-queue="orders">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = dict(re.findall(r'data-f="(\w+)"[^>]*>(.*?)</td>', row.group(1), re.S))
    assert (cells["all_waiting"], cells["all_inflight"]) == ("2", "0")
    assert ">1</a>" in cells["all_dead"]


async def test_queue_page_shows_the_retention_and_what_it_dropped(
    aredis: AsyncClient, http: httpx.AsyncClient
) -> None:
    await ReliableQueue(aredis).set_retention("orders", 1, 30 * 86400)
    await dead_letter(aredis, b"first")
    await dead_letter(aredis, b"second")  # the first is dropped
    page = (await http.get("/queues/orders?list=dead")).text
    assert 'id="n-dead" data-q="orders" data-f="dead">1<' in page
    assert '<b id="n-dropped">1</b>' in page
    assert "the newest <b>1</b>, up to <b>30</b> days" in page
    assert "second" in page and "first" not in page


async def test_cross_site_post_is_refused(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    await dead_letter(aredis)
    page = await http.get("/queues/orders")
    token = csrf_of(page.text)
    form = {"csrf": token}
    evil = await http.post(
        "/queues/orders/dead/retry", data=form, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and "cross-site" in evil.text
    no_origin = await http.post("/queues/orders/dead/retry", data=form)
    assert no_origin.status_code == 403
    no_token = await http.post("/queues/orders/dead/retry", data={}, headers={"Origin": BASE})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    assert (await ReliableQueue(aredis).info("orders")).dead == 1


async def test_retry_and_delete_dead_letters(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    first = await dead_letter(aredis, b"one")
    await dead_letter(aredis, b"two")
    page = await http.get("/queues/orders?list=dead")
    assert "ValueError: x" in page.text and "Traceback" in page.text
    headers = {"Origin": BASE}
    form = {"csrf": csrf_of(page.text), "id": first}
    moved = await http.post("/queues/orders/dead/retry", data=form, headers=headers)
    assert moved.status_code == 303 and moved.headers["location"] == "/queues/orders"
    info = await ReliableQueue(aredis).info("orders")
    assert (info.waiting + info.delayed, info.dead) == (1, 1)  # requeued: due now
    gone = await http.post(
        "/queues/orders/dead/delete", data={"csrf": form["csrf"]}, headers=headers
    )
    assert gone.status_code == 303
    assert (await ReliableQueue(aredis).info("orders")).dead == 0


async def test_jobs_by_state_show_arguments(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    await enqueue(aredis, Task.ref("app.send", queue="orders"), "a@b.c", subject="<hi>")
    page = (await http.get("/jobs", params={"queue": "orders", "state": "waiting"})).text
    assert "app.send" in page and "a@b.c" in page and "&lt;hi&gt;" in page
    bad = await http.get("/jobs", params={"state": "nope"})
    assert bad.status_code == 400


async def test_services_and_metrics_pages(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    await registry.register_namespace(aredis, "demo:mpush", "mpush")
    await aredis.rpush("demo:mpush:ids", "1")  # type: ignore[misc]
    fields = {"host": "box", "pid": "4242", "started": "1", "renewed": "2", "service": "mpush"}
    await aredis.hset("demo:mpush:1", mapping=fields)  # type: ignore[misc]
    await aredis.expire("demo:mpush:1", 60)
    metric = {"count": 4, "sum": 2000, "max": 1500, "histo10": 3, "histo20": 1}
    await aredis.hset("demo:mpush:metrics:done", mapping=metric)  # type: ignore[misc]
    services = (await http.get("/services")).text
    assert "demo:mpush" in services and "box" in services and "4242" in services
    assert "Rollouts" not in services
    await set_state(aredis, "demo:mpush", 2, "rolled back", msg="errors 10/20 = 50%")
    services = (await http.get("/services")).text
    assert "<b>rolled back</b>" in services and "errors 10/20 = 50%" in services
    metrics = (await http.get("/metrics")).text
    assert "demo:mpush:metrics:done" in metrics and "mean <b>500.000</b>" in metrics
    assert metrics.count('<rect class="bar') == 11  # histo10 … histo100 and above
    assert "≤10%: 3" in metrics and "≤20%: 1" in metrics and "over: 0" in metrics
    assert "share of the timeout" in metrics and ">timeout</text>" in metrics  # axes, the line


async def test_api_queues_returns_samples(aredis: AsyncClient) -> None:
    await ReliableQueue(aredis).push("orders", b"a", b"b")
    app = create_app(DashboardConfig(queues=["orders"], sampleEvery=0.05), client=aredis)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # the sampler runs in the app's lifespan
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
        asyncio.timeout(30),
    ):
        while len((body := (await http.get("/api/queues")).json())["samples"]) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert body["every"] == 0.05
    for sample in body["samples"]:  # one per sampling, each with the queue's counts
        assert [(q["name"], q["waiting"]) for q in sample["queues"]] == [("orders", 2)]


async def test_api_queues_has_no_samples_before_the_sampler_ran(http: httpx.AsyncClient) -> None:
    body = (await http.get("/api/queues")).json()  # the transport runs no lifespan
    assert body["every"] == 2.0 and body["samples"] == []


async def test_a_page_while_redis_is_unreachable_says_so() -> None:
    gone = connect(f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    async with make(gone) as http:
        for path in ("/", "/queues/orders", "/jobs", "/services"):
            page = await http.get(path)
            assert page.status_code == 503, (path, page.text)
            assert "<h1>Redis unreachable</h1>" in page.text
            assert "ConnectionError" in page.text
            assert 'data-reload="live"' in page.text  # live.js loads it again once Redis answers
            assert page.headers["retry-after"] == "2"
        token = http.cookies["redline_csrf"]
        action = await http.post(
            "/queues/orders/control/pause", data={"csrf": token}, headers={"Origin": BASE}
        )
        assert action.status_code == 503 and "<h1>Redis unreachable</h1>" in action.text
        assert "data-reload" not in action.text  # a reload would send the POST again
        assert "may not have been done" in action.text
    await gone.aclose()


@pytest.mark.cluster
async def test_pages_on_a_cluster(acluster: AsyncClient, prefix: str) -> None:
    name = "{" + prefix + "}:orders"
    await acluster.hset(f"{prefix}:metrics:in", mapping={"count": 1, "histo10": 1})  # type: ignore[misc]
    config = DashboardConfig(queues=[name], namespaces=[prefix])
    app = create_app(config, client=acluster)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        await ReliableQueue(acluster).push(name, b"x")
        assert f'data-queue="{name}"' in (await http.get("/")).text
        assert f"{prefix}:metrics:in" in (await http.get("/metrics")).text
        assert (await http.get("/services")).status_code == 200


async def test_pause_and_resume_buttons(aredis: AsyncClient, http: httpx.AsyncClient) -> None:
    page = await http.get("/queues/orders")
    assert 'id="pause"' in page.text and 'id="paused"' not in page.text
    form, headers = {"csrf": csrf_of(page.text)}, {"Origin": BASE}
    evil = await http.post(
        "/queues/orders/control/pause", data=form, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and not await is_paused(aredis, "orders")
    done = await http.post("/queues/orders/control/pause", data=form, headers=headers)
    assert done.status_code == 303 and await is_paused(aredis, "orders")
    page = await http.get("/queues/orders")
    assert 'id="paused"' in page.text and 'id="resume"' in page.text
    done = await http.post("/queues/orders/control/resume", data=form, headers=headers)
    assert done.status_code == 303 and not await is_paused(aredis, "orders")


async def test_a_jobs_page_shows_its_status_and_events_and_cancels_it(
    aredis: AsyncClient, http: httpx.AsyncClient
) -> None:
    job = await enqueue(aredis, Task.ref("app.report", queue="orders"), 7)
    assert job is not None
    listed = await http.get("/jobs?queue=orders&state=waiting")
    assert f'href="/job/{job.id}?queue=orders"' in listed.text
    page = await http.get(f"/job/{job.id}?queue=orders")
    assert page.status_code == 200 and 'id="job-state">waiting<' in page.text
    assert '<tr class="event">' in page.text and "enqueued" in page.text
    form, headers = {"csrf": csrf_of(page.text)}, {"Origin": BASE}
    done = await http.post(f"/job/{job.id}/cancel?queue=orders", data=form, headers=headers)
    assert done.status_code == 303
    assert await aredis.zscore(job_keys("orders").cancelled, job.id) is not None
    missing = await http.get(f"/job/{job.id}")
    assert missing.status_code == 400 and "queue=NAME" in missing.text
