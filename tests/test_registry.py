"""sregister: instances registered by the real lifecycle hook, listed and looked up."""

from __future__ import annotations

import asyncio
import json

import pytest

from redline.config import ServiceConfig
from redline.connection import AsyncClient
from redline.runtime import Context, run_service
from redline.runtime.lifecycle import Lifecycle
from redline.scaling.registry import instances, peers, retire, services
from tests.helpers import invoke, run


class Idle:
    name = "idle"

    async def step(self, ctx: Context) -> None:
        await asyncio.sleep(0.05)


async def _running(url: str, ns: str, service: str) -> tuple[asyncio.Task[None], asyncio.Event]:
    config = ServiceConfig(redis=url, popTimeout=0.2, serviceNamespace=ns)
    hook = Lifecycle(ns, service, serves="q:in", expire=60, renew=0.1)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(Idle(), config, [hook], stopping, tick_interval=0.05))
    return task, stopping


async def _wait(predicate) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(10):
        while not await predicate():  # noqa: ASYNC110 - polling Redis, nothing to wait on
            await asyncio.sleep(0.02)


async def test_instances_services_and_peers(redis_url: str, aredis: AsyncClient) -> None:
    running = [
        await _running(redis_url, "a:router", "hrouter"),
        await _running(redis_url, "a:router", "hrouter"),
        await _running(redis_url, "b:router", "hrouter"),
        await _running(redis_url, "a:importer", "himporter"),
    ]

    async def all_up() -> bool:
        return len(await peers(aredis, "hrouter")) == 3

    await _wait(all_up)
    listed = await instances(aredis, "a:router")
    assert [i.id for i in listed] == ["1", "2"]
    assert listed[0].service == "hrouter" and listed[0].serves == "q:in" and listed[0].pid > 0
    assert set(await services(aredis)) == {"a:router", "b:router", "a:importer"}
    await retire(aredis, listed[0])  # the lifecycle shutdown: that instance stops by itself
    done, _ = await asyncio.wait(
        [running[0][0], running[1][0]], timeout=10, return_when="FIRST_COMPLETED"
    )
    assert len(done) == 1
    assert [i.id for i in await instances(aredis, "a:router")] == ["2"]
    for task, stopping in running:
        stopping.set()
        await asyncio.wait_for(task, 10)
    assert await peers(aredis, "hrouter") == []


async def test_an_instance_whose_hash_expired_is_not_listed(aredis: AsyncClient) -> None:
    await aredis.lpush("x:ids", "7")
    await aredis.hset("x:7", mapping={"host": "h", "pid": 1, "started": 1})
    await aredis.hset("x:8", "role", "standby")  # a stray half hash is no instance
    await aredis.lpush("x:ids", "8")
    assert [i.id for i in await instances(aredis, "x")] == ["7"]
    await aredis.delete("x:7")
    assert await instances(aredis, "x") == []


@pytest.mark.cluster
async def test_status_on_a_cluster(cluster, acluster: AsyncClient, prefix: str) -> None:  # type: ignore[no-untyped-def]
    task, stopping = await _running(cluster.url, f"{prefix}:svc", "worker")

    async def up() -> bool:
        return len(await instances(acluster, f"{prefix}:svc")) == 1

    await _wait(up)
    result = await asyncio.to_thread(run, "status", "--redis", cluster.url, "--queue", "q")
    assert result.returncode == 0, result.stderr
    assert f"{prefix}:svc" in result.stdout
    listing = await asyncio.to_thread(run, "services", "--redis", cluster.url)
    assert "worker" in listing.stdout
    stopping.set()
    await asyncio.wait_for(task, 10)


def test_status_on_the_embedded_server(redis_url: str, sredis) -> None:  # type: ignore[no-untyped-def]
    sredis.hset("redline:scale", "demo:w", 2)
    sredis.lpush("demo:in", "a", "b", "c")
    sredis.hset("demo:w:metrics:done", mapping={"count": 100, "above": 30})
    result = run("status", "--redis", redis_url, "--queue", "demo:in")
    assert result.returncode == 0, result.stderr
    assert "demo:w" in result.stdout and "unhealthy" in result.stdout
    assert "demo:in" in result.stdout


def test_status_shows_an_unhealthy_instance_and_recent_errors(redis_url: str, sredis) -> None:  # type: ignore[no-untyped-def]
    sredis.hset("redline:registry", "demo:h", json.dumps({"service": "worker"}))
    sredis.hset("redline:cscale:specs", "demo:h", json.dumps({"health": {"threshold": 0.2}}))
    for ident, errors in (("1", 0), ("2", 5)):
        sredis.hset(f"demo:h:{ident}", mapping={"pid": 9, "calls": 20, "errors": errors})
        sredis.expire(f"demo:h:{ident}", 60)
        sredis.lpush("demo:h:ids", ident)
    sredis.hset("demo:h:metrics:forwarded", "count", 40)  # the service as a whole: 5/40 is fine
    error = {"t": 0, "instance": "demo:h:2", "msg": "step failed 3 times: refused"}
    sredis.lpush("demo:h:errors", json.dumps(error))
    result = invoke("status", "--redis", redis_url, env={"COLUMNS": "250"})  # no wrapped cells
    assert result.returncode == 0, result.stderr
    assert "unhealthy instance 2: errors 5/20 = 25% > 20%" in result.stdout
    assert "step failed 3 times: refused" in result.stdout
