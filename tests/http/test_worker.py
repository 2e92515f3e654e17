"""The handler services' step: an answer that cannot be sent leaves its request to the lease; a
batch's expired requests are skipped and what is not an envelope is dead-lettered."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from redline.connection import connect
from redline.http.envelope import Request, Response
from redline.http.hassets import Assets, AssetsConfig
from redline.queue import ReliableQueue
from redline.runtime import run_service


async def test_an_answer_that_cannot_be_sent_is_redelivered(
    redis_url: str, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_url)
    reply, queue = f"{prefix}:reply", f"{prefix}:assets"
    await client.set(reply, "not a list")  # the LPUSH of the answer fails (WRONGTYPE)
    config = AssetsConfig.model_validate(
        {"redis": redis_url, "popTimeout": 0.2, "in": queue, "root": tmp_path, "lease": 0.5}
    )
    service, stopping = Assets(config), asyncio.Event()
    task = asyncio.create_task(run_service(service, config, service.hooks(), stopping=stopping))
    try:
        request = Request("r1", "GET", "/missing.txt", reply=reply, deadline=time.time() + 60)
        with caplog.at_level(logging.WARNING, logger="redline.http.worker"):
            await client.lpush(queue, request.encode())
            for _ in range(200):
                if "could not send answers" in caplog.text:
                    break
                await asyncio.sleep(0.05)
        assert "hassets could not send answers" in caplog.text
        await client.delete(reply)
        found = await client.brpop([reply], timeout=30)  # the lease ran out: answered again
        assert found is not None
        answer = Response.decode(found[1])
        assert (answer.id, answer.status) == ("r1", 404)
    finally:
        stopping.set()
        await task
        await client.aclose()


async def test_a_batch_answers_the_live_skips_the_expired_and_dead_letters_the_rest(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = connect(redis_url)
    reply, queue = f"{prefix}:reply", f"{prefix}:assets"
    (tmp_path / "a.txt").write_text("hello")
    config = AssetsConfig.model_validate(
        {
            "redis": redis_url,
            "popTimeout": 0.2,
            "in": queue,
            "root": tmp_path,
            "serviceNamespace": prefix,
        }
    )
    late = Request("late", "GET", "/a.txt", reply=reply, deadline=time.time() - 1)
    live = Request("live", "GET", "/a.txt", reply=reply, deadline=time.time() + 60)
    # One LPUSH: the three are popped together, as one batch.
    await client.lpush(queue, late.encode(), b"not an envelope", live.encode())
    service, stopping = Assets(config), asyncio.Event()
    task = asyncio.create_task(run_service(service, config, service.hooks(), stopping=stopping))
    try:
        found = await client.brpop([reply], timeout=30)
        assert found is not None
        answer = Response.decode(found[1])
        assert (answer.id, answer.status, answer.body) == ("live", 200, b"hello")
    finally:
        stopping.set()
        await task
    try:
        assert await client.llen(reply) == 0  # the expired one got no answer
        assert int(await client.hget(f"{prefix}:metrics:expired", "count") or 0) == 1
        [dead] = await ReliableQueue(client).dead(queue)
        assert dead.payload == b"not an envelope"
    finally:
        await client.aclose()
