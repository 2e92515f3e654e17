from __future__ import annotations

import asyncio

from redline.http.envelope import Response
from redline.http.mdispatch import Dispatcher
from redline.runtime.metrics import Metrics


class Counting(Metrics):
    def __init__(self) -> None:
        super().__init__("t", 1000)
        self.seen: list[tuple[str, float]] = []

    def count(self, name: str, amount: int = 1) -> None:
        self.seen.append((name, amount))

    def observe(self, name: str, millis: float, histogram: bool = True) -> None:
        self.seen.append((name, -1))


async def test_resolves_by_id_and_counts_late_answers() -> None:
    metrics = Counting()
    dispatcher = Dispatcher(metrics, timeout=0.05)
    answered = dispatcher.track("a")
    expiring = dispatcher.track("b")
    assert dispatcher.resolve(Response("a", 201))
    assert (await answered).status == 201
    sweeper = asyncio.create_task(dispatcher.sweep(0.01))
    assert (await asyncio.wait_for(expiring, 5)).status == 504
    sweeper.cancel()
    assert not dispatcher.resolve(Response("b", 200))  # after its timeout: dropped
    assert not dispatcher.resolve(Response("zzz", 200))  # never dispatched here
    assert metrics.seen == [("response", -1), ("timeout", 1), ("late", 1), ("late", 1)]
    assert len(dispatcher) == 0


async def test_cancel_all_answers_everything_waiting() -> None:
    dispatcher = Dispatcher(Counting(), timeout=30)
    waiting = [dispatcher.track(str(i)) for i in range(3)]
    dispatcher.cancel_all()
    assert [(await w).status for w in waiting] == [503, 503, 503]
