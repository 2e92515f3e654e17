from __future__ import annotations

import asyncio
import contextlib
import os

from redline.config import ServiceConfig
from redline.connection import AsyncClient
from redline.runtime import Context, run_service
from redline.runtime.lifecycle import Lifecycle, check_interval, compact, ids_key, instance_key
from redline.scripting import scripts

NS = "demo:svc"


class Idle:
    """A service that only waits: the lifecycle hook is what is under test."""

    name = "idle"

    async def step(self, ctx: Context) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), ctx.config.pop_timeout)


def config(url: str, **fields: object) -> ServiceConfig:
    base = {"redis": url, "popTimeout": 1, "serviceNamespace": NS, **fields}
    return ServiceConfig.model_validate(base)


async def started(aredis: AsyncClient, url: str, hook: Lifecycle, **fields: object):  # type: ignore[no-untyped-def]
    stopping = asyncio.Event()
    cfg = config(url, **fields)
    task = asyncio.create_task(run_service(Idle(), cfg, [hook], stopping))  # type: ignore[arg-type]
    for _ in range(500):
        if hook.key and await aredis.exists(hook.key):
            return task, stopping
        await asyncio.sleep(0.01)
    raise AssertionError("instance did not register")


def test_key_names_are_the_seeds() -> None:
    assert ids_key("demo:mpush") == "demo:mpush:ids"
    assert instance_key("demo:mpush", 9) == "demo:mpush:9"
    assert check_interval(15, 10) == 1.0
    assert check_interval(15, 0.4) == 0.2


async def test_registers_renews_and_cleans_up_on_stop(redis_url: str, aredis: AsyncClient) -> None:
    hook = Lifecycle(NS, "idle", "a -> b", expire=30, renew=0.1)
    task, stopping = await started(aredis, redis_url, hook)
    fields = await aredis.hgetall(hook.key)
    assert {b"host", b"pid", b"started", b"renewed", b"service", b"version", b"serves"} <= set(
        fields
    )
    assert fields[b"pid"] == str(os.getpid()).encode() and fields[b"serves"] == b"a -> b"
    assert 0 < await aredis.ttl(hook.key) <= 30
    assert await aredis.lrange(ids_key(NS), 0, -1) == [hook.key.rsplit(":", 1)[1].encode()]
    for _ in range(500):  # renewal rewrites `renewed` once a second has passed
        if (await aredis.hget(hook.key, "renewed")) != fields[b"renewed"]:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("never renewed")
    stopping.set()
    await asyncio.wait_for(task, 10)
    assert not await aredis.exists(hook.key)
    assert await aredis.lrange(ids_key(NS), 0, -1) == []


async def test_deleting_the_hash_stops_the_instance(redis_url: str, aredis: AsyncClient) -> None:
    hook = Lifecycle(NS, "idle")
    task, _ = await started(aredis, redis_url, hook, popTimeout=2)
    await aredis.delete(hook.key)
    await asyncio.wait_for(task, 10)
    assert await aredis.lrange(ids_key(NS), 0, -1) == []


async def test_a_hash_changed_by_someone_else_stops_it_and_is_left_alone(
    redis_url: str, aredis: AsyncClient
) -> None:
    hook = Lifecycle(NS, "idle")
    task, _ = await started(aredis, redis_url, hook)
    await aredis.hset(hook.key, "pid", "1")
    await asyncio.wait_for(task, 10)
    assert await aredis.hget(hook.key, "pid") == b"1"  # not ours any more: not deleted


async def test_start_up_compacts_ids_whose_hash_expired(
    redis_url: str, aredis: AsyncClient
) -> None:
    await aredis.lpush(ids_key(NS), "3", "4", "5")
    await aredis.hset(instance_key(NS, 4), "pid", "1")
    assert await compact(aredis, NS) == ["5", "3"]
    assert await aredis.lrange(ids_key(NS), 0, -1) == [b"4"]


async def test_ids_are_trimmed_to_capacity(redis_url: str, aredis: AsyncClient) -> None:
    await aredis.set(f"{NS}:id", 100)
    for ident in range(90, 100):
        await aredis.lpush(ids_key(NS), ident)
        await aredis.hset(instance_key(NS, ident), "pid", "1")
    hook = Lifecycle(NS, "idle", capacity=3)
    task, stopping = await started(aredis, redis_url, hook, serviceCapacity=3)
    assert await aredis.lrange(ids_key(NS), 0, -1) == [b"101", b"99", b"98"]
    stopping.set()
    await asyncio.wait_for(task, 10)


async def test_renew_script_on_its_own(aredis: AsyncClient) -> None:
    key = instance_key(NS, 1)
    args = ["h", "7", "100", 200, 30, 1]
    assert await scripts.run(aredis, "lifecycle_renew", [key], args) == 0
    await aredis.hset(key, mapping={"host": "h", "pid": "7", "started": "100"})
    assert await scripts.run(aredis, "lifecycle_renew", [key], args) == 1
    assert await aredis.hget(key, "renewed") == b"200" and await aredis.ttl(key) > 0
    await aredis.hset(key, "started", "101")
    assert await scripts.run(aredis, "lifecycle_renew", [key], args) == -1


async def test_a_server_that_lost_its_data_is_joined_again_under_the_same_id(
    redis_url: str, aredis: AsyncClient
) -> None:
    """The hash gone with the counter (a restart without persistence, a flush) is not a request
    to stop: the instance registers again as itself, and the next instance gets a new id."""
    hook = Lifecycle(NS, "idle")
    task, stopping = await started(aredis, redis_url, hook, popTimeout=0.5)
    ident = hook.key.rsplit(":", 1)[1]
    await aredis.delete(hook.key, f"{NS}:id", ids_key(NS))
    for _ in range(1000):
        if await aredis.exists(hook.key):
            break
        await asyncio.sleep(0.01)
    assert not task.done() and await aredis.exists(hook.key)
    assert await aredis.lrange(ids_key(NS), 0, -1) == [ident.encode()]
    assert await aredis.get(f"{NS}:id") == ident.encode()
    other = Lifecycle(NS, "idle")
    other_task, other_stopping = await started(aredis, redis_url, other)
    assert other.key == instance_key(NS, int(ident) + 1)
    stopping.set()
    other_stopping.set()
    await asyncio.wait_for(asyncio.gather(task, other_task), 10)


async def test_counter_floor_script_on_its_own(aredis: AsyncClient) -> None:
    counter = f"{NS}:id"
    assert await scripts.run(aredis, "counter_floor", [counter], [7]) == 7
    assert await scripts.run(aredis, "counter_floor", [counter], [3]) == 7
    assert await aredis.incr(counter) == 8
