from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redline.config import load_config
from redline.connection import AsyncClient, connect
from redline.errors import ConfigError
from redline.keys import derived
from redline.runtime import namespace_of, run_service
from redline.runtime.lifecycle import ids_key
from redline.runtime.metrics import read_metrics
from redline.scripting.scripts import run
from redline.services.vpush import VpushConfig, VpushKeys, VpushService, build


def config_for(redis_url: str, remote_url: str, **fields: Any) -> VpushConfig:
    base = {"redis": redis_url, "in": "in", "out": "out", "outRedis": remote_url}
    base |= {"popTimeout": 0.5, "lease": 2, "retryBase": 0.02, "retryMax": 0.2}
    return VpushConfig.model_validate(base | fields)


@contextlib.asynccontextmanager
async def running(config: VpushConfig) -> AsyncIterator[VpushService]:
    service, hooks = build(config)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(service, config, hooks, stopping))
    try:
        yield service
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def until(predicate: Any, within: float = 30) -> None:
    """Poll an async predicate (Redis state has no event to wait on)."""
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture
async def remote(remote_url: str) -> AsyncIterator[AsyncClient]:
    client = connect(remote_url)
    yield client
    await client.aclose()


def messages(n: int) -> list[bytes]:
    return [f"m{i}".encode() for i in range(n)]


async def test_moves_every_message_once_in_order(
    redis_url: str, remote_url: str, aredis: AsyncClient, remote: AsyncClient
) -> None:
    sent = [*messages(500), b"", b"\xff\x00binary"]
    for m in sent:
        await aredis.lpush("in", m)
    async with running(config_for(redis_url, remote_url)):
        await until(lambda: _has(remote, len(sent)))
    assert (await remote.lrange("out", 0, -1))[::-1] == sent
    assert await aredis.llen("in") == 0
    config = config_for(redis_url, remote_url)
    keys = VpushKeys.of(config)
    assert await aredis.exists(keys.transfer, keys.transfer_id, keys.lease) == 0
    metrics = await read_metrics(aredis, namespace_of("vpush", config, config.in_queue))
    assert metrics["forwarded"]["count"] == len(sent) and metrics["transfers"]["count"] == len(sent)
    assert metrics["lease"]["count"] == 1 and "retries" not in metrics


async def _has(client: AsyncClient, n: int) -> bool:
    return int(await client.llen("out")) >= n


async def test_batches_keep_order(
    redis_url: str, remote_url: str, aredis: AsyncClient, remote: AsyncClient
) -> None:
    sent = messages(1000)
    await aredis.lpush("in", *sent)
    config = config_for(redis_url, remote_url, batch=64, serviceNamespace="demo:vpush")
    async with running(config):
        await until(lambda: _has(remote, len(sent)))
    assert (await remote.lrange("out", 0, -1))[::-1] == sent
    metrics = await read_metrics(aredis, "demo:vpush")
    assert metrics["forwarded"]["count"] == 1000 and int(metrics["transfers"]["count"]) < 1000


async def test_one_active_instance_and_a_clean_handover(
    redis_url: str, remote_url: str, aredis: AsyncClient, remote: AsyncClient
) -> None:
    config = config_for(redis_url, remote_url, lease=60)  # a lease that cannot lapse here
    lease = VpushKeys.of(config).lease
    await aredis.lpush("in", *messages(100))
    async with running(config) as a:
        await until(lambda: _has(remote, 100))
        async with running(config) as b:
            await aredis.lpush("in", *messages(100)[::-1])  # any content; count below
            await until(lambda: _has(remote, 200))
            assert a.holder is not None and b.holder is None
        await aredis.lpush("in", b"after b")
        await until(lambda: _has(remote, 201))
        assert await aredis.get(lease) == a.holder.encode()
    assert await aredis.exists(lease) == 0  # a released it on stop: nobody waits for expiry
    async with running(config) as c:
        await aredis.lpush("in", b"to c")
        await until(lambda: _has(remote, 202))
        assert c.holder is not None and c.holder.endswith("#2")


async def test_registered_with_the_lifecycle_and_stopped_by_deleting_its_hash(
    redis_url: str, remote_url: str, aredis: AsyncClient, remote: AsyncClient
) -> None:
    config = config_for(redis_url, remote_url, serviceNamespace="demo:vpush")
    service, hooks = build(config)
    task = asyncio.create_task(run_service(service, config, hooks, asyncio.Event()))
    await aredis.lpush("in", b"one")
    await until(lambda: _has(remote, 1))
    assert service.holder is not None and service.holder.startswith(f"{service.instance}#")
    assert await aredis.hget(service.instance, "service") == b"vpush"
    await aredis.delete(service.instance)  # the lifecycle's remote shutdown
    await asyncio.wait_for(task, 10)
    assert await aredis.exists(VpushKeys.of(config).lease, ids_key("demo:vpush")) == 0


async def test_the_remote_push_is_exactly_once_per_transfer_id(
    remote_url: str, remote: AsyncClient
) -> None:
    keys = ["out", derived("out", "vpush", "t1")]
    assert await run(remote, "vpush_push", keys, [60000, b"a", b"b"]) == 1
    assert await run(remote, "vpush_push", keys, [60000, b"a", b"b"]) == 0  # the retry
    assert await remote.lrange("out", 0, -1) == [b"b", b"a"]
    assert 0 < await remote.pttl(keys[1]) <= 60000


async def test_a_fenced_off_instance_cannot_claim(
    redis_url: str, remote_url: str, aredis: AsyncClient
) -> None:
    keys = VpushKeys.of(config_for(redis_url, remote_url))
    lease = [keys.lease, keys.fence]
    assert await run(aredis, "vpush_lease", lease, ["a", 50]) == 1
    await until(lambda: _gone(aredis, keys.lease), within=5)
    assert await run(aredis, "vpush_lease", lease, ["b", 10000]) == 2
    assert await run(aredis, "vpush_lease", lease, ["a", 10000]) == 0
    await aredis.lpush("in", "x")
    claim = [keys.in_queue, keys.transfer, keys.transfer_id, keys.lease]
    assert await run(aredis, "vpush_next", claim, ["a#1", 1, "t", ""]) == -1
    assert await run(aredis, "vpush_next", claim, ["b#2", 1, "t", ""]) == [b"t", b"x"]
    # Claiming again before it is finished returns the same transfer (same id: deduped remotely).
    assert await run(aredis, "vpush_next", claim, ["b#2", 1, "u", ""]) == [b"t", b"x"]
    assert await run(aredis, "vpush_next", claim, ["b#2", 1, "u", "t"]) == []


async def _gone(client: AsyncClient, key: str) -> bool:
    return int(await client.exists(key)) == 0


async def test_cluster_to_standalone_and_back(
    cluster_url: str, remote_url: str, prefix: str, remote: AsyncClient
) -> None:
    inq = f"{{{prefix}}}:in"
    sent = messages(200)
    acluster = connect(cluster_url)
    await acluster.lpush(inq, *sent)
    there = config_for(cluster_url, remote_url, **{"in": inq, "out": "out"})
    async with running(there):
        await until(lambda: _has(remote, 200))
    assert (await remote.lrange("out", 0, -1))[::-1] == sent
    await remote.lpush("back", *sent)
    back = config_for(remote_url, cluster_url, **{"in": "back", "out": f"{prefix}:out"})
    async with running(back):
        await until(lambda: _llen(acluster, f"{prefix}:out", 200))
    assert (await acluster.lrange(f"{prefix}:out", 0, -1))[::-1] == sent
    await acluster.aclose()


async def _llen(client: AsyncClient, key: str, n: int) -> bool:
    return int(await client.llen(key)) >= n


@pytest.fixture
def cluster_url(cluster: Any) -> str:
    return str(cluster.url)


def test_bad_config_says_what_to_fix() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(VpushConfig, sets=["in=a", "lease=60", "dedupeWindow=100", "batch=0"])
    text = "\n".join(info.value.problems)
    assert "out: missing" in text and "outRedis: missing" in text
    assert "batch: 0" in text
