from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.exceptions

from redline.config import ServiceConfig
from redline.connection import AsyncClient
from redline.errors import ShutdownRequested
from redline.runtime import Context, run_service
from redline.runtime.lifecycle import Lifecycle
from redline.runtime.metrics import metrics_key, recent_errors


class Mover:
    """A minimal service: blocking move from `a` to `b`, like lpush."""

    name = "mover"

    async def step(self, ctx: Context) -> None:
        await ctx.redis.blmove("a", "b", ctx.config.pop_timeout, "RIGHT", "LEFT")


class StopAfterTicks:
    def __init__(self, ticks: int) -> None:
        self.ticks, self.events = ticks, []

    async def start(self, ctx: Context) -> None:
        self.events.append("start")

    async def tick(self, ctx: Context) -> None:
        self.ticks -= 1
        if self.ticks == 0:
            raise ShutdownRequested("enough ticks")

    async def stop(self, ctx: Context) -> None:
        self.events.append("stop")


async def eventually(check: Callable[[], Awaitable[object]], seconds: float = 30) -> None:
    """Poll `check` until it is truthy (a deadline, not a measure)."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - Redis state has no event to wait on
            await asyncio.sleep(0.01)


async def _blocked_on(client: AsyncClient, command: str) -> int:
    """How many clients of this test's database are blocked in `command` right now."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    clients = await client.client_list()
    return sum(c["cmd"] == command and "b" in c["flags"] and c["db"] == str(db) for c in clients)


async def test_runs_steps_and_stops_when_its_blocking_pop_ends(redis_url: str, aredis) -> None:  # type: ignore[no-untyped-def]
    config = ServiceConfig(redis=redis_url, popTimeout=1)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(Mover(), config, stopping=stopping))
    await aredis.lpush("a", "one", "two")
    await eventually(lambda: _blocked_on(aredis, "blmove"))  # moved both, waits for more
    assert await aredis.lrange("b", 0, -1) == [b"two", b"one"]
    stopping.set()  # mid-pop: the stop waits for the pop (popTimeout), never cuts it off
    await aredis.lpush("a", "late")  # taken by that pop, or left for the next instance
    await asyncio.wait_for(task, 30)  # a deadline: popTimeout is 1 s
    assert await _blocked_on(aredis, "blmove") == 0
    rest = await aredis.lrange("b", 0, -1) + await aredis.lrange("a", 0, -1)
    assert sorted(rest) == [b"late", b"one", b"two"]  # nothing dropped by the stop


async def test_a_hook_can_stop_the_service(redis_url: str) -> None:
    hook = StopAfterTicks(2)
    config = ServiceConfig(redis=redis_url, popTimeout=0.2)
    await asyncio.wait_for(run_service(Mover(), config, [hook], tick_interval=0.05), 5)
    assert hook.events == ["start", "stop"]


async def test_unreachable_server_is_retried_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    config = ServiceConfig(redis="redis://127.0.0.1:1/0", popTimeout=0.2)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(Mover(), config, stopping=stopping))

    async def retries() -> list[str]:
        return [r.message for r in caplog.records if "service=mover step failed" in r.message]

    await eventually(lambda: _at_least(retries, 3))  # backed off and tried again, twice
    assert not task.done()
    first = (await retries())[:3]
    assert all(f"attempt={n} " in line for n, line in enumerate(first, 1)), first
    stopping.set()
    await asyncio.wait_for(task, 30)


async def _at_least(lines: Callable[[], Awaitable[list[str]]], n: int) -> bool:
    return len(await lines()) >= n


class Flaky:
    """Fails `failures` times with a transient error, then stops the service on its next step."""

    name = "flaky"

    def __init__(self, failures: int, then: Exception | None = None) -> None:
        self.failures, self.then = failures, then

    async def step(self, ctx: Context) -> None:
        if self.failures:
            self.failures -= 1
            raise redis.exceptions.ConnectionError(f"flaky, {self.failures} to go")
        if self.then is not None:
            raise self.then
        ctx.stopping.set()


async def test_a_run_of_step_failures_is_kept_among_recent_errors(redis_url: str, aredis) -> None:  # type: ignore[no-untyped-def]
    hook = Lifecycle("t:flaky", "flaky", renew=0.1)
    config = ServiceConfig(redis=redis_url, popTimeout=0.2)
    seen: dict[str, dict[bytes, bytes]] = {}

    class Peek:  # reads the lifecycle hash just before it is deleted at stop
        async def start(self, ctx: Context) -> None: ...
        async def tick(self, ctx: Context) -> None: ...
        async def stop(self, ctx: Context) -> None:
            seen["hash"] = await aredis.hgetall(hook.key)

    await asyncio.wait_for(run_service(Flaky(2), config, [hook, Peek()]), 10)
    [error] = await recent_errors(aredis, "t:flaky")
    assert "step failed 2 times, then recovered: flaky, 0 to go" in error["msg"]
    assert error["instance"] == "t:flaky:1"
    assert seen["hash"][b"errors"] == b"1"
    assert await aredis.hget(metrics_key("t:flaky", "errors"), "count") == b"1"


async def test_an_error_that_ends_the_service_is_recorded(redis_url: str, aredis) -> None:  # type: ignore[no-untyped-def]
    hook = Lifecycle("t:crash", "crash", renew=0.1)
    config = ServiceConfig(redis=redis_url, popTimeout=0.2)
    with pytest.raises(ValueError, match="bad payload"):
        await asyncio.wait_for(run_service(Flaky(0, ValueError("bad payload")), config, [hook]), 10)
    [error] = await recent_errors(aredis, "t:crash")
    assert "stopped by an error: ValueError('bad payload')" in error["msg"]
