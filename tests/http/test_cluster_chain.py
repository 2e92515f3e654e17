"""The web chain on a Redis Cluster: himporter → hrouter → hassets, queues and replies spread
over the masters (the consumers' steps and the importer's loops are pipelines there)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from redline.http.hassets import Assets, AssetsConfig
from redline.http.himporter import ImporterSettings, create_app
from redline.http.hrouter import Router, RouterConfig
from redline.runtime import run_service
from tests.servers import Cluster

pytestmark = pytest.mark.cluster


async def test_static_files_through_the_chain_on_a_cluster(
    cluster: Cluster, prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hi there\n")
    common = {"redis": cluster.url, "popTimeout": 0.5}
    http, assets = f"{prefix}:http", f"{prefix}:assets"
    routes = [{"path": r"/static/(?P<path>.*)", "queue": assets}]
    services = [
        Router(RouterConfig.model_validate({**common, "in": http, "routes": routes})),
        Assets(AssetsConfig.model_validate({**common, "in": assets, "root": tmp_path})),
    ]
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(run_service(s, s.config, s.hooks(), stopping=stopping))
        for s in services
    ]
    settings = ImporterSettings.model_validate(
        {**common, "out": http, "replies": f"{prefix}:reply", "timeout": 10}
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                got = await asyncio.gather(*(client.get("/static/hello.txt") for _ in range(40)))
                assert {(r.status_code, r.content) for r in got} == {(200, b"hi there\n")}
                assert (await client.get("/nowhere")).status_code == 404
                assert (await client.get("/static/missing.txt")).status_code == 404
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
