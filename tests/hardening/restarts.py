"""What the restart tests of held connections and the web chain share: a server they can
SIGKILL and start again on its port, the wait for blocked clients, and the chain's handler
services running in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from redline.http.hassets import Assets, AssetsConfig
from redline.http.hrouter import Router, RouterConfig
from redline.runtime import run_service
from tests.servers import ServerProcess


@pytest.fixture
def restartable() -> Iterator[ServerProcess]:
    srv = ServerProcess()
    yield srv.start()
    srv.close()


async def blocked(server: ServerProcess, n: int) -> None:
    """Wait until `n` clients are blocked in a command on `server` (the loop keeps running)."""
    client = server.client()
    async with asyncio.timeout(30):
        while int(client.info("clients")["blocked_clients"]) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    client.close()


@contextlib.asynccontextmanager
async def handlers(url: str, root: Path) -> AsyncIterator[list[asyncio.Task[None]]]:
    """The chain's router (queue ``w:http``) and assets service (``w:assets``, files of
    `root` under /static/) running in this loop on `url`, stopped on exit; yields their
    tasks."""
    common = {"redis": url, "popTimeout": 0.5}
    routes = [{"path": r"/static/(?P<path>.*)", "queue": "w:assets"}]
    services = [
        Router(RouterConfig.model_validate({**common, "in": "w:http", "routes": routes})),
        Assets(AssetsConfig.model_validate({**common, "in": "w:assets", "root": root})),
    ]
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(run_service(s, s.config, s.hooks(), stopping=stopping))
        for s in services
    ]
    try:
        yield tasks
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
