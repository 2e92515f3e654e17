"""mbalance: the shortest output wins, limits give back-pressure, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from redline.connection import AsyncClient
from redline.runtime.lifecycle import ids_key
from redline.scripting import scripts
from redline.services.mbalance import MbalanceConfig
from tests.helpers import spawn, stop, wait_for
from tests.services.test_forward import wait_until


async def balance(client: AsyncClient, batch: int, outs: list[str], limits: list[int]):  # type: ignore[no-untyped-def]
    keys = ["p:1", "in", *outs]
    return await scripts.run(client, "forward_balance", keys, [batch, 0, *limits])


async def test_each_message_goes_to_the_shortest_output_ties_first_listed(
    aredis: AsyncClient,
) -> None:
    await aredis.lpush("b", "x", "y")
    await aredis.lpush("in", *[f"m{i}" for i in range(5)])
    assert await balance(aredis, 10, ["a", "b", "c"], [0, 0, 0]) == [0, 5]
    # m0→a, m1→c, m2→a (a and c tie: a is listed first), m3→c, m4→a (three-way tie)
    assert [await aredis.llen(k) for k in ("a", "b", "c")] == [3, 2, 2]
    assert await aredis.lrange("a", 0, -1) == [b"m4", b"m2", b"m0"]


async def test_full_outputs_take_nothing_more_and_say_so(aredis: AsyncClient) -> None:
    await aredis.lpush("in", *[f"m{i}" for i in range(10)])
    assert await balance(aredis, 10, ["a", "b"], [2, 3]) == [1, 5]
    assert [await aredis.llen(k) for k in ("a", "b", "in")] == [2, 3, 5]
    await aredis.rpop("a")
    assert await balance(aredis, 10, ["a", "b"], [2, 3]) == [1, 1]


def test_max_length_must_name_outputs_and_be_positive() -> None:
    base = {"in": "i", "out": ["a", "b"]}
    assert MbalanceConfig.model_validate({**base, "maxLength": 5}).limits() == (5, 5)
    assert MbalanceConfig.model_validate({**base, "maxLength": {"b": 3}}).limits() == (0, 3)
    with pytest.raises(ValidationError, match="not in out"):
        MbalanceConfig.model_validate({**base, "maxLength": {"c": 3}})
    with pytest.raises(ValidationError, match="at least 1"):
        MbalanceConfig.model_validate({**base, "maxLength": 0})


def consume(url: str, queue: str, delay: float, got: list[bytes], done: threading.Event) -> None:
    client = redis.Redis.from_url(url)
    while not done.is_set():
        item = client.brpop([queue], timeout=0.2)
        if item:
            got.append(item[1])
            done.wait(delay)


def test_uneven_consumers(tmp_path: Path, redis_url: str, sredis: redis.Redis) -> None:
    outs = ["w:fast", "w:slow", "w:stopped"]
    config = tmp_path / "mbalance.json"
    fields = {"redis": redis_url, "in": "w:in", "out": outs, "serviceNamespace": "w:mb"}
    config.write_text(json.dumps({**fields, "popTimeout": 1, "batch": 1, "maxLength": 20}))
    got: dict[str, list[bytes]] = {"w:fast": [], "w:slow": []}
    done = threading.Event()
    threads = [
        threading.Thread(target=consume, args=(redis_url, q, d, got[q], done))
        for q, d in (("w:fast", 0.0), ("w:slow", 0.02))
    ]
    proc = spawn("mbalance", "--config", str(config), log=tmp_path / "mbalance.log")
    messages = [f"m{i}".encode() for i in range(1500)]
    try:
        wait_for(lambda: sredis.llen(ids_key("w:mb")) == 1, timeout=20)
        sredis.lpush("w:in", *messages)
        # every queue fills to its limit (back-pressure) before the consumers start
        wait_for(lambda: [sredis.llen(q) for q in outs] == [20, 20, 20], timeout=20)
        for thread in threads:
            thread.start()
        wait_for(lambda: len(got["w:fast"]) + len(got["w:slow"]) == len(messages) - 20, 60)
    finally:
        done.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        assert stop(proc) == 0
    stopped = sredis.lrange("w:stopped", 0, -1)
    assert len(stopped) == 20  # it stopped growing at its limit
    assert len(got["w:fast"]) > len(got["w:slow"])
    assert sorted(got["w:fast"] + got["w:slow"] + stopped) == sorted(messages)


async def test_all_full_waits_and_counts_back_pressure(redis_url: str, aredis: AsyncClient) -> None:
    from redline.runtime import run_service
    from redline.services import mbalance

    config = MbalanceConfig.model_validate(
        {"redis": redis_url, "in": "in", "out": ["a"], "maxLength": 1, "popTimeout": 1}
    )
    forwarder, hooks = mbalance.build(config)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(forwarder, config, hooks, stopping))
    await aredis.lpush("in", "x", "y")

    async def waited() -> bool:
        return bool(await aredis.exists("{in}:service:metrics:backpressure"))

    async def drained() -> bool:
        return not await aredis.llen("in")

    await wait_until(waited)
    await aredis.rpop("a")
    await wait_until(drained)
    stopping.set()
    await asyncio.wait_for(task, 10)
    assert await aredis.lrange("a", 0, -1) == [b"y"]
    assert int(await aredis.hget("{in}:service:metrics:backpressure", "count") or 0) >= 1
