from __future__ import annotations

import asyncio
from functools import partial

from redline.http.envelope import Response
from redline.http.mdispatch import Dispatcher, settle
from redline.runtime.metrics import Metrics


class Counting(Metrics):
    def __init__(self) -> None:
        super().__init__("t", 1000)
        self.seen: list[tuple[str, float]] = []

    def count(self, name: str, amount: int = 1) -> None:
        self.seen.append((name, amount))

    def observe(self, name: str, millis: float, histogram: bool = True) -> None:
        self.seen.append((name, -1))


def _future() -> asyncio.Future[Response]:
    return asyncio.get_running_loop().create_future()


async def test_resolves_by_id_and_counts_late_answers() -> None:
    metrics = Counting()
    dispatcher = Dispatcher(metrics, timeout=0.05)
    answered, expiring = _future(), _future()
    dispatcher.track("a", partial(settle, answered))
    dispatcher.track("b", partial(settle, expiring))
    assert dispatcher.resolve(Response("a", 201))
    assert answered.done()  # answered in the call itself: no loop callback in between
    assert answered.result().status == 201
    sweeper = asyncio.create_task(dispatcher.sweep(0.01))
    assert (await asyncio.wait_for(expiring, 5)).status == 504
    sweeper.cancel()
    assert not dispatcher.resolve(Response("b", 200))  # after its timeout: dropped
    assert not dispatcher.resolve(Response("zzz", 200))  # never dispatched here
    assert metrics.seen == [("response", -1), ("timeout", 1), ("late", 1), ("late", 1)]
    assert len(dispatcher) == 0


async def test_each_answer_is_called_once() -> None:
    dispatcher = Dispatcher(Counting(), timeout=30)
    calls: list[tuple[str, int]] = []
    dispatcher.track("a", lambda response: calls.append((response.id, response.status)))
    assert dispatcher.resolve(Response("a", 200))
    assert not dispatcher.resolve(Response("a", 201))  # a second reply for it: late
    dispatcher.fail("a", Response("a", 503))
    dispatcher.cancel_all()
    assert dispatcher.expire_due(now=1e12) == 0
    assert calls == [("a", 200)]


async def test_cancel_all_answers_everything_waiting() -> None:
    dispatcher = Dispatcher(Counting(), timeout=30)
    waiting = [_future() for _ in range(3)]
    for i, future in enumerate(waiting):
        dispatcher.track(str(i), partial(settle, future))
    waiting[0].cancel()  # nobody waits for it any more: left cancelled
    dispatcher.cancel_all()
    assert [w.result().status for w in waiting[1:]] == [503, 503]
    assert waiting[0].cancelled()
