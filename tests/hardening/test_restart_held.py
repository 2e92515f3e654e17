"""Held connections and the web chain through a Redis restart without persistence: the server
SIGKILLed and started again, empty, on the same port.

What the `web` branch's send-only step ran into (docs/DEVELOPING.md, issue 25 web half): the
chain never answered again. Not the idle held connection — each held connection gets a clean
ConnectionError and then a fresh link — but the services' lifecycle: the empty server had lost
their hashes, which read as "deleted, stop", so every service shut itself down at its next
check. tests/hardening/test_restart_web.py passed only when its requests beat that check."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis

from redline.connection import HeldConnection, connect
from redline.http.himporter import ImporterSettings, create_app
from tests.hardening.restarts import blocked, handlers, restartable
from tests.servers import ServerProcess

__all__ = ["restartable"]  # the fixture, used by name


async def _ping_until_pong(link: HeldConnection) -> int:
    """PINGs until one is answered; how many calls failed first (each must fail, not hang)."""
    for failures in range(50):
        try:
            if await asyncio.wait_for(link.run([("PING",)]), 10) == [b"PONG"]:
                return failures
        except redis.exceptions.ConnectionError:
            await asyncio.sleep(0.1)
    raise AssertionError("no PONG in 50 calls after the restart")


async def test_an_idle_and_a_blocked_held_connection_recover_after_a_restart(
    restartable: ServerProcess,
) -> None:
    client = connect(restartable.url)
    busy, idle = HeldConnection(client), HeldConnection(client)
    try:
        [busy_id], [idle_id] = (
            await busy.run([("CLIENT", "ID")]),
            await idle.run([("CLIENT", "ID")]),
        )
        assert busy_id != idle_id  # two connections of the pool
        in_hand = asyncio.create_task(busy.run([("BLPOP", "q", 30)]))
        await blocked(restartable, 1)
        restartable.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            await asyncio.wait_for(in_hand, 10)  # the kill cut off the call in hand
        restartable.start()
        assert await _ping_until_pong(idle) == 0  # found dead while idle: replaced, not failed
        assert await _ping_until_pong(busy) == 0  # its failure already dropped the dead link
        assert await client.ping()  # the pool's own connections too
    finally:
        await asyncio.wait_for(client.aclose(), 10)


async def _registered_again(server: ServerProcess, keys: list[str]) -> None:
    """Wait until every lifecycle hash in `keys` is back on the restarted (empty) server: each
    service has run its check since, and registered again instead of stopping."""
    client = server.client()
    async with asyncio.timeout(60):
        while client.exists(*keys) < len(keys):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    client.close()


# Alone, as test_restart_web.py's: the whole web chain across a server restart.
@pytest.mark.slow
@pytest.mark.alone
async def test_the_chain_answers_again_after_its_checks_saw_the_empty_server(
    restartable: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hi there\n")
    common = {"redis": restartable.url, "popTimeout": 0.5}
    app = create_app(ImporterSettings.model_validate({**common, "out": "w:http", "timeout": 5}))
    hashes = ["redline:hrouter:1", "redline:hassets:1", "redline:himporter:1"]
    async with handlers(restartable.url, tmp_path) as tasks, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/static/hello.txt")).status_code == 200
            await blocked(restartable, 2)
            restartable.kill()
            restartable.start()
            await _registered_again(restartable, hashes)
            assert not any(task.done() for task in tasks)
            got = await asyncio.gather(*(client.get("/static/hello.txt") for _ in range(30)))
            assert {r.status_code for r in got} == {200}
            assert {r.text for r in got} == {"hi there\n"}
