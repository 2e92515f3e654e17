"""The web chain through a Redis restart: the importer's push and reply loops and the handler
services' steps keep a connection each (`HeldConnection`); a SIGKILLed server breaks them all.
While it is down requests get a clean 5xx, never a hang past the timeout, and once it is back
every loop takes a new connection by itself and requests succeed again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from redline.http.hassets import Assets, AssetsConfig
from redline.http.himporter import ImporterSettings, create_app
from redline.http.hrouter import Router, RouterConfig
from redline.runtime import run_service
from tests.servers import ServerProcess


@pytest.fixture
def restartable() -> Iterator[ServerProcess]:
    srv = ServerProcess()
    yield srv.start()
    srv.close()


async def _until_ok(client: httpx.AsyncClient, seconds: float = 60) -> int:
    """GETs until one is answered 200; how many were answered otherwise (all 5xx)."""
    for failures in range(int(seconds * 5)):
        response = await client.get("/static/hello.txt")
        if response.status_code == 200:
            return failures
        assert response.status_code in (503, 504), response.status_code
        await asyncio.sleep(0.2)
    raise AssertionError(f"no 200 within {seconds}s after the restart")


async def _blocked(server: ServerProcess, n: int) -> None:
    """Wait until `n` clients are blocked in a command on `server` (the loop keeps running)."""
    client = server.client()
    async with asyncio.timeout(30):
        while int(client.info("clients")["blocked_clients"]) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    client.close()


# Alone (slow): once, on three xdist workers at a load average of 7, all 30 requests after the
# restart were answered 504 within the importer's 2 s timeout (it passes alone, and passed on
# the same machine under xdist before). Not understood yet: docs/DEVELOPING.md, "Suite time".
@pytest.mark.slow
async def test_the_chain_recovers_after_the_server_is_killed_and_restarted(
    restartable: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hi there\n")
    common = {"redis": restartable.url, "popTimeout": 0.5}
    routes = [{"path": r"/static/(?P<path>.*)", "queue": "w:assets"}]
    services = [
        Router(RouterConfig.model_validate({**common, "in": "w:http", "routes": routes})),
        Assets(AssetsConfig.model_validate({**common, "in": "w:assets", "root": tmp_path})),
    ]
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(run_service(s, s.config, s.hooks(), stopping=stopping))
        for s in services
    ]
    settings = ImporterSettings.model_validate({**common, "out": "w:http", "timeout": 2})
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert await _until_ok(client) == 0
                # the kill cuts off the pops the router and the assets service are blocked in
                await _blocked(restartable, 2)
                restartable.kill()
                down = await asyncio.wait_for(client.get("/static/hello.txt"), 10)
                assert down.status_code in (503, 504)  # answered, not hung
                restartable.start()
                await _until_ok(client)
                got = await asyncio.gather(*(client.get("/static/hello.txt") for _ in range(30)))
                assert {r.status_code for r in got} == {200}
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
