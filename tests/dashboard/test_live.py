"""The live stream's wait for the next sample, under the cancellation a closed page gets.

Starlette ends a page's stream (``GET /live``) by cancelling it through an anyio cancel scope,
which cancels the task again at every turn of the loop until it ends. Pages come and go while
the sampler publishes and other pages wait; afterwards every cancelled stream has ended, the
sampler still publishes, and a new page's stream still gets samples.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import anyio

from redline.dashboard.live import Live


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _stream(live: Live, got: list[dict[str, Any]]) -> None:
    """What a page's stream does: wait for each sample newer than the last one sent."""
    seen = 0.0
    while True:
        sample = await live.newer(seen, 15)
        if sample is not None:
            seen = sample["t"]
            got.append(sample)


async def _publish(live: Live, rnd: random.Random) -> None:
    t = 1.0
    while True:
        t += 1
        await live.publish({"t": t, "ok": True})
        await _turns(rnd.randint(1, 3))


async def _page_closed(live: Live, rnd: random.Random) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(_stream, live, [])
        await _turns(rnd.randint(0, 8))
        group.cancel_scope.cancel()  # as Starlette does when the page goes


async def test_pages_closing_while_samples_come_leave_the_stream_working() -> None:
    for seed in range(40):
        rnd = random.Random(seed)
        live = Live(10)
        sampler = asyncio.create_task(_publish(live, rnd))
        closing = [asyncio.create_task(_page_closed(live, rnd)) for _ in range(rnd.randint(1, 6))]
        _, stuck = await asyncio.wait(closing, timeout=5)
        assert not stuck, f"seed {seed}: a closed page's stream never ended"
        got: list[dict[str, Any]] = []
        page = asyncio.create_task(_stream(live, got))
        await _turns(50)
        assert not sampler.done(), f"seed {seed}: the sampler stopped: {sampler}"
        assert got, f"seed {seed}: a new page's stream got no sample"
        for task in (page, sampler):
            task.cancel()
        _, stuck = await asyncio.wait({page, sampler}, timeout=5)
        assert not stuck, f"seed {seed}: a stream or the sampler did not end when cancelled"
