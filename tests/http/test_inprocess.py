"""The whole chain in one event loop: himporter app (httpx ASGI transport) → hrouter → hassets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from redline.connection import AsyncClient
from redline.http.handler import HandlerService, HandlerSet, handler
from redline.http.hassets import Assets, AssetsConfig
from redline.http.himporter import Importer, ImporterSettings, create_app
from redline.http.hrouter import Router, RouterConfig
from redline.http.worker import WorkerConfig
from redline.runtime import run_service

hello = HandlerSet()


@handler(r"GET /hello/(?P<name>\w+)", into=hello)
async def greet(request, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"hello": name, "who": request.params.get("who", "")}


@handler(r"POST /echo", into=hello)
def echo(request) -> bytes:  # type: ignore[no-untyped-def]
    return bytes(request.body)


@handler(r"GET /never", into=hello)
async def never(request) -> str:  # type: ignore[no-untyped-def]
    await asyncio.sleep(3600)
    return "unreachable"


@pytest.fixture
async def chain(
    redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Importer]]:
    (tmp_path / "hello.txt").write_bytes(b"hi there\n")
    stopping = asyncio.Event()
    common = {"redis": redis_url, "popTimeout": 0.5}
    routes = [
        {"path": r"/hello/(?P<who>\w+)", "queue": "t:hello"},
        {"path": r"/(echo|never)", "queue": "t:hello"},
        {"path": r"/static/(?P<path>.*)", "queue": "t:assets"},
    ]
    services = [
        Router(RouterConfig.model_validate({**common, "in": "t:http", "routes": routes})),
        Assets(AssetsConfig.model_validate({**common, "in": "t:assets", "root": tmp_path})),
        HandlerService(WorkerConfig.model_validate({**common, "in": "t:hello"}), hello),
    ]
    tasks = [
        asyncio.create_task(run_service(s, s.config, s.hooks(), stopping=stopping))
        for s in services
    ]
    settings = ImporterSettings.model_validate(
        {**common, "out": "t:http", "timeout": 2, "maxBody": 100, "maxConcurrency": 3}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app.state.importer
    stopping.set()
    await asyncio.gather(*tasks)


@pytest.fixture
def web(chain: tuple[httpx.AsyncClient, Importer]) -> httpx.AsyncClient:
    return chain[0]


async def test_static_file_through_the_chain(web: httpx.AsyncClient) -> None:
    response = await web.get("/static/hello.txt")
    assert response.status_code == 200 and response.content == b"hi there\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    again = await web.get("/static/hello.txt", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304


async def test_handler_gets_route_and_own_params(web: httpx.AsyncClient) -> None:
    response = await web.get("/hello/ann")
    assert response.json() == {"hello": "ann", "who": "ann"}


async def test_unrouted_is_404(web: httpx.AsyncClient) -> None:
    assert (await web.get("/nowhere")).status_code == 404


async def test_binary_body_round_trips_and_413(web: httpx.AsyncClient) -> None:
    body = bytes(range(100))
    response = await web.post("/echo", content=body)
    assert response.status_code == 200 and response.content == body
    assert (await web.post("/echo", content=b"x" * 101)).status_code == 413


async def test_timeout_is_504_and_concurrency_limit_503(
    chain: tuple[httpx.AsyncClient, Importer], aredis: AsyncClient
) -> None:
    web, importer = chain
    hanging = [asyncio.create_task(web.get("/never")) for _ in range(3)]
    async with asyncio.timeout(30):  # the three are in flight (maxConcurrency is 3)
        while len(importer.dispatcher) < 3:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)
    refused = await web.get("/static/hello.txt")
    assert not any(h.done() for h in hanging)  # still in flight when the fourth came
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert [r.status_code for r in await asyncio.gather(*hanging)] == [504, 504, 504]
