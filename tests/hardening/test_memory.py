"""The server at maxmemory with noeviction: a clear error for producers, nothing queued lost.

The per-message cost of a queue with 1,000,000 waiting messages is measured by
``python -m bench memory`` (see docs/guarantees.md); this test uses a small number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from redline.connection import AsyncClient, connect
from redline.errors import RedlineError, ServerFullError
from redline.queue import ReliableQueue
from tests.servers import ServerProcess


@pytest.fixture
async def full() -> AsyncIterator[AsyncClient]:
    """A client of a server with 2 MB of room left under maxmemory (policy noeviction)."""
    srv = ServerProcess(config={"maxmemory-policy": "noeviction"}).start()
    client = connect(srv.url)
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory", used + 2_000_000)
    yield client
    await client.aclose()
    srv.close()


async def _fill(queue: ReliableQueue) -> tuple[list[bytes], ServerFullError]:
    stored: list[bytes] = []
    for n in range(100_000):
        batch = [b"%d-%d" % (n, i) + b"x" * 100 for i in range(50)]
        try:
            await queue.push("mq", *batch)
        except ServerFullError as exc:
            return stored, exc
        stored += batch
    raise AssertionError("the server never refused a push")


@pytest.mark.parametrize("functions", [True, False], ids=["fcall", "evalsha"])
async def test_push_at_maxmemory_says_why_and_loses_nothing(
    full: AsyncClient, functions: bool
) -> None:
    queue = ReliableQueue(full, use_functions=functions)
    stored, error = await _fill(queue)
    assert isinstance(error, RedlineError) and error.stored == [] and error.refused == 50
    for words in ("'mq'", "out of memory", "maxmemory", "noeviction", "not stored", "Consume"):
        assert words in str(error)
    assert (await queue.info("mq")).waiting == len(stored)
    # A push that spans batches reports what was stored before the refusal.
    with pytest.raises(ServerFullError) as big:
        await queue.push("mq", *[b"y" * 100] * 2500)
    assert big.value.refused + len(big.value.stored) == 2500
    stored += [b"y" * 100] * len(big.value.stored)
    # Consumers still work at the limit (a pop frees memory), and every message comes out.
    consumed: list[bytes] = []
    while batch := await queue.pop("mq", count=100):
        consumed += [d.payload for d in batch]
        assert len(await queue.ack(*batch)) == len(batch)
    assert sorted(consumed) == sorted(stored)
    assert await queue.push("mq", b"room again")  # drained: producers can go on
