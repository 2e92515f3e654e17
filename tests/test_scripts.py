"""scripting.scripts' pipelined runners against a real server."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from redline.connection import AsyncClient
from redline.scripting.scripts import run_batched_many

COUNTER = "scripts:counter"


def _incr(by: str) -> tuple[list[str], list[str]]:
    """A `hash_incr_if_exists` call (`by` not a number: the server's error)."""
    return [COUNTER], ["n", by]


async def test_run_batched_many_answers_in_order_and_stops_at_a_failed_call(
    aredis: AsyncClient,
) -> None:
    await aredis.script_flush()  # the first call loads it; none after is retried out of order
    await aredis.hset(COUNTER, "n", 0)
    calls = [_incr(str(n)) for n in range(1, 200)]
    replies = [r async for r in run_batched_many(aredis, "hash_incr_if_exists", calls)]
    assert replies == [1] * 199 and int(await aredis.hget(COUNTER, "n") or 0) == sum(range(200))
    failing = [_incr("1"), _incr("x"), _incr("1")]
    seen = []
    with pytest.raises(ResponseError):
        async for reply in run_batched_many(aredis, "hash_incr_if_exists", failing):
            seen.append(reply)
    assert seen == [1]  # the call after the failed one may have run: sent before the failure
    assert int(await aredis.hget(COUNTER, "n") or 0) in (sum(range(200)) + 1, sum(range(200)) + 2)
