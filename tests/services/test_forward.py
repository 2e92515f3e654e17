"""The consume-and-forward piece: its scripts on their own, recovery, and a cluster run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from redline.connection import AsyncClient
from redline.errors import CrossSlotError
from redline.runtime import Context, run_service
from redline.runtime.lifecycle import instance_key
from redline.runtime.metrics import metrics_key
from redline.scripting import scripts
from redline.services.forward import check_slots
from redline.services.mpush import MpushConfig, build, route
from redline.services.pending import dead_key, pending_key, registry_key
from tests.servers import Cluster


async def fanout(client: AsyncClient, batch: int, keys: list[str], payloads: bool = False):  # type: ignore[no-untyped-def]
    return await scripts.run(client, "forward_fanout", keys, [batch, int(payloads)])


async def test_fanout_takes_pending_first_then_in_keeping_fifo(aredis: AsyncClient) -> None:
    await aredis.lpush("p:1", b"parked")
    await aredis.lpush("in", b"a", b"b", b"c")
    keys = ["p:1", "in", "o1", "o2"]
    assert await fanout(aredis, 3, keys, payloads=True) == [0, b"parked", b"a", b"b"]
    assert await fanout(aredis, 3, keys) == [0, 1]
    assert await fanout(aredis, 3, keys) == [0, 0]
    for out in ("o1", "o2"):
        assert await aredis.lrange(out, 0, -1) == [b"c", b"b", b"a", b"parked"]
    assert not await aredis.exists("p:1", "in")


async def test_fanout_is_binary_safe(aredis: AsyncClient) -> None:
    odd = [b"", b"\xff\x00\xfe", "é".encode()]
    await aredis.lpush("in", *odd)
    await fanout(aredis, 10, ["p:1", "in", "o1"])
    assert await aredis.lrange("o1", 0, -1) == odd[::-1]  # as they were on `in`


async def test_recover_returns_pending_so_the_oldest_pops_first(aredis: AsyncClient) -> None:
    await aredis.lpush("p:7", b"old", b"new")
    await aredis.lpush("in", b"later")
    await aredis.hset("reg", "7", "ns:7")
    await aredis.hset("dead", "7", "1")
    assert await scripts.run(aredis, "forward_recover", ["reg", "p:7", "in", "dead"], ["7"]) == 2
    assert [await aredis.rpop("in") for _ in range(3)] == [b"old", b"new", b"later"]
    assert not await aredis.exists("reg", "dead")  # its own return: forgotten at once


def demo(url: str, prefix: str = "demo:mpush", **fields: object) -> MpushConfig:
    return MpushConfig.model_validate(
        {
            "redis": url,
            "in": f"{prefix}:in",
            "pending": f"{prefix}:pending",
            "out": [f"{prefix}:out0", f"{prefix}:out1"],
            "popTimeout": 1,
            "serviceNamespace": "demo:mpush",
            **fields,
        }
    )


async def wait_until(check) -> None:  # type: ignore[no-untyped-def]
    """Poll the async predicate `check` for up to 20 s."""
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within 20 s: {check}")


async def running(config: MpushConfig):  # type: ignore[no-untyped-def]
    forwarder, hooks = build(config)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(forwarder, config, hooks, stopping))

    async def registered() -> bool:
        return bool(forwarder.mine)

    await wait_until(registered)
    return forwarder, stopping, task


async def test_start_up_recovers_dead_instances_pending_not_live_ones(
    redis_url: str, aredis: AsyncClient
) -> None:
    config = demo(redis_url)
    base = config.pending_base
    await aredis.lpush(pending_key(base, "41"), b"from-dead")
    await aredis.lpush(pending_key(base, "42"), b"from-live")
    await aredis.hset(registry_key(base), mapping={"41": "demo:mpush:41", "42": "demo:mpush:42"})
    await aredis.hset(instance_key("demo:mpush", 42), "pid", "1")  # 42 is alive
    forwarder, stopping, task = await running(config)

    async def forwarded() -> bool:
        return bool(await aredis.llen("demo:mpush:out1") == 1)

    await wait_until(forwarded)
    assert await aredis.lrange("demo:mpush:out0", 0, -1) == [b"from-dead"]
    assert await aredis.lrange(pending_key(base, "42"), 0, -1) == [b"from-live"]
    assert set(await aredis.hkeys(registry_key(base))) == {
        b"41",
        b"42",
        forwarder.mine.rsplit(":", 1)[1].encode(),
    }
    stopping.set()
    await asyncio.wait_for(task, 10)
    assert await aredis.hget(metrics_key("demo:mpush", "forwarded"), "count") == b"1"
    # 41 stays listed, as dead, for serviceExpire + popTimeout (see the next test)
    assert set(await aredis.hkeys(registry_key(base))) == {b"41", b"42"}
    assert await aredis.hkeys(dead_key(base)) == [b"41"]


async def test_a_dead_instance_stays_listed_for_a_grace_so_a_late_claim_is_recovered(
    redis_url: str, aredis: AsyncClient
) -> None:
    # 41's hash was deleted (a remote shutdown), but it works on until its next renewal
    # notices: a message it parks after a recovery pass, before a SIGKILL, must come back too.
    config = demo(redis_url, serviceExpire=1, popTimeout=0.5)  # grace: 1.5 s
    forwarder, _ = build(config)
    base, ctx = config.pending_base, Context(config, aredis, asyncio.Event(), "1")
    await aredis.hset(registry_key(base), "41", instance_key("demo:mpush", 41))
    await aredis.lpush(pending_key(base, "41"), b"first")
    assert await forwarder.recover_dead(ctx) == 1
    assert await aredis.hexists(registry_key(base), "41")
    await aredis.lpush(pending_key(base, "41"), b"late")
    assert await forwarder.recover_dead(ctx) == 1
    assert await aredis.hexists(registry_key(base), "41")
    await asyncio.sleep(1.6)
    assert await forwarder.recover_dead(ctx) == 0  # dead for longer than the grace: forgotten
    assert await aredis.exists(registry_key(base), dead_key(base)) == 0
    assert await aredis.lrange("demo:mpush:in", 0, -1) == [b"first", b"late"]


async def test_a_forgotten_instance_lists_itself_again_in_the_claim_that_parks(
    redis_url: str, aredis: AsyncClient
) -> None:
    # 41 stalled past the grace (stopped, paused, cut off) and was forgotten; when it runs
    # again, the round trip of its next claim lists it before the BLMOVE parks anything, and
    # the grace starts over: if it is killed then, another instance returns the message.
    config = demo(redis_url, serviceExpire=1, popTimeout=0.5)
    base, owner = config.pending_base, instance_key("demo:mpush", 41)
    forwarder, _ = build(config)
    ctx = Context(config, aredis, asyncio.Event(), "41", instance_key=owner)
    await forwarder.start(ctx)
    assert await aredis.hget(registry_key(base), "41") == owner.encode()
    await aredis.hdel(registry_key(base), "41")  # forgotten, as a recoverer's last pass leaves it
    await aredis.hset(dead_key(base), "41", "0")  # and an old first-dead time, had it stayed
    await aredis.lpush("demo:mpush:in", b"late")
    assert await forwarder.claim(ctx, 1) == b"late"
    assert await aredis.lrange(pending_key(base, "41"), 0, -1) == [b"late"]
    assert await aredis.hget(registry_key(base), "41") == owner.encode()
    assert not await aredis.hexists(dead_key(base), "41")
    other, _ = build(config)  # 41 is SIGKILLed here; 41's lifecycle hash does not exist
    assert await other.recover_dead(Context(config, aredis, asyncio.Event(), "2")) == 1
    assert await aredis.lrange("demo:mpush:in", 0, -1) == [b"late"]
    assert await aredis.hexists(registry_key(base), "41")  # listed for a new grace


async def test_stop_returns_what_is_parked_in_its_own_pending(
    redis_url: str, aredis: AsyncClient
) -> None:
    forwarder, stopping, task = await running(demo(redis_url, batch=1))
    stopping.set()
    await asyncio.wait_for(task, 10)
    await aredis.lpush(forwarder.mine, b"parked")  # as if BLMOVE landed while stopping
    await forwarder.stop(Context(forwarder.config, aredis, asyncio.Event(), "1"))
    assert await aredis.lrange("demo:mpush:in", 0, -1) == [b"parked"]


async def test_an_idle_forwarder_waits_past_the_default_socket_timeout_without_failing(
    redis_url: str, aredis: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """popTimeout 10 on a client with redis-py's default read timeout (5 s): the blocking move
    is cut to what the timeout allows, so a quiet spell is not a failed step and a backoff."""
    caplog.set_level(logging.INFO)
    config = demo(redis_url, popTimeout=10)
    _, stopping, task = await running(config)
    await asyncio.sleep(6.5)
    assert not [r.message for r in caplog.records if "step failed" in r.message]
    await aredis.lpush(config.in_, b"after the quiet")

    async def forwarded() -> bool:
        return all([await aredis.llen(out) == 1 for out in config.out])

    await wait_until(forwarded)
    stopping.set()
    await asyncio.wait_for(task, 30)


def test_cross_slot_config_is_refused_on_a_cluster(cluster: Cluster) -> None:
    config = demo(cluster.url)
    with pytest.raises(CrossSlotError, match=r"share one cluster slot.*out\[0\]"):
        check_slots("mpush", config, route(config))
    tagged = demo(cluster.url, prefix="{demo}")
    check_slots("mpush", tagged, route(tagged))


@pytest.mark.cluster
async def test_mpush_on_a_cluster_with_hash_tagged_names(
    cluster: Cluster, acluster: AsyncClient, prefix: str
) -> None:
    config = demo(cluster.url, prefix="{" + prefix + "}", serviceNamespace=f"{prefix}:svc")
    _, stopping, task = await running(config)
    names = [f"m{i}".encode() for i in range(500)]
    await acluster.lpush(config.in_, *names)

    async def arrived() -> bool:
        return bool(await acluster.llen(config.out[1]) == len(names))

    await wait_until(arrived)
    stopping.set()
    await asyncio.wait_for(task, 10)
    for out in config.out:
        assert await acluster.lrange(out, 0, -1) == names[::-1]  # FIFO: oldest on the right
