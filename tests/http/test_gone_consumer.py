"""A handler SIGKILLed while it holds requests: the dashboard names the instance that holds them
as gone once its lifecycle hash is, and its "requeue what gone consumers hold" action gives
every one of them back at once, long before their lease would end."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import httpx
import pytest
import redis

from redline.connection import connect
from redline.queue import Holder, ReliableQueue
from tests.dashboard.test_app import csrf_of, make
from tests.helpers import wait_for
from tests.http.test_resilience import Stack, _status, info, stack

pytestmark = pytest.mark.timeout(240)
__all__ = ["stack"]  # the fixture, used by name

HELD = 3


def _ask(site: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # answered 504 by the front once it times out
        httpx.get(f"{site}/who", timeout=20)


def _held(url: str) -> tuple[list[Holder], list[str]]:
    async def get() -> tuple[list[Holder], list[str]]:
        client = connect(url)
        try:
            queue = ReliableQueue(client)
            ids = [m.id for m in await queue.inspect("res:app", pending=True)]
            return await queue.holders("res:app"), ids
        finally:
            await client.aclose()

    return asyncio.run(get())


async def _dashboard(url: str, consumer: str) -> tuple[str, int]:
    """The in-flight tab's page, then the release action's status."""
    client = connect(url)
    try:
        async with make(client) as http:
            page = (await http.get("/queues/res:app?list=inflight")).text
            assert f"{consumer} (gone)" in page, "the dashboard names the gone holder"
            done = await http.post(
                "/queues/res:app/release",
                data={"csrf": csrf_of(page)},
                headers={"Origin": "http://dash.test"},
            )
            return page, done.status_code
    finally:
        await client.aclose()


# A lease of 600 s: the keeper's first extension (a third of it) would give each request a
# lease of its own, which no longer names its consumer (docs/queue.md, "Who holds what").
def test_what_a_killed_handler_held_is_named_and_given_back(stack: Stack) -> None:
    routes = [{"path": "/.*", "queue": "res:app"}]
    stack.start("router", "hrouter", **{"in": "res:http", "routes": routes})
    hangs = {"lease": 600, "in": "res:app", "serviceExpire": 2, "serviceRenew": 0.5}
    stack.start("hangs", "handler", env={"HANG_FOREVER": "1"}, module="app.py", **hangs)
    site = f"http://127.0.0.1:{stack.port}"
    wait_for(lambda: _status(f"{site}/nothing") == 404, 30)  # the handler answers
    asking = [threading.Thread(target=_ask, args=(site,)) for _ in range(HELD)]
    for thread in asking:
        thread.start()
    wait_for(lambda: info(stack.url, "res:app").inflight == HELD, timeout=30)
    holders, ids = _held(stack.url)
    named = [h for h in holders if h.consumer]
    assert sum(h.messages for h in named) == HELD and len({h.consumer for h in named}) == 1
    consumer = named[0].consumer
    plain = redis.Redis.from_url(stack.url)
    assert plain.exists(consumer), f"{consumer} is the handler's lifecycle hash"
    stack.procs["hangs"].kill()  # SIGKILL, holding the requests
    stack.procs["hangs"].wait(timeout=30)
    wait_for(lambda: not plain.exists(consumer), timeout=30)  # its hash expires
    _, status = asyncio.run(_dashboard(stack.url, consumer))
    assert status == 303
    after = info(stack.url, "res:app")
    assert (after.inflight, after.waiting + after.delayed, after.dead) == (0, HELD, 0)
    back, _ = _held(stack.url)
    assert back == []
    delayed = asyncio.run(_delayed(stack.url))
    assert sorted(delayed) == sorted(ids)  # every message it held, and only those
    for thread in asking:
        thread.join(timeout=60)


async def _delayed(url: str) -> list[str]:
    client = connect(url)
    try:
        return [m.id for m in await ReliableQueue(client).inspect("res:app", delayed=True)]
    finally:
        await client.aclose()
