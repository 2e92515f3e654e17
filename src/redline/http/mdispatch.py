"""mdispatch: tracks each dispatched HTTP request until its response comes back or time runs out.

The seed's message tracking applied to request/response. A request is tracked (id, start time,
where its answer goes) by the himporter that holds its client connection, because only that
process can answer the client; keeping the tracking in its memory costs no Redis round trip
per request. What it learns goes to Redis as metrics (``<ns>:metrics:<name>`` hashes, shared
by every replica):

- ``response`` — count, sum and max of response times (ms) and a histogram of tenths of the
  timeout (``histo10`` … ``histo100``);
- ``timeout`` — requests answered 504 because no response came in time;
- ``late`` — responses that came after their request had timed out (dropped, never delivered to
  another client), or for an id this instance never dispatched;
- ``rejected`` (503, over the concurrency limit), ``toolarge`` (413), ``headers`` (431).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redline.http.envelope import Response
from redline.runtime.metrics import Metrics

__all__ = ["Answer", "Dispatcher", "Metrics", "settle"]

Answer = Callable[[Response], object]  # called once with a request's response


def settle(future: asyncio.Future[Response], response: Response) -> None:
    """An `Answer` for a request awaited as a future (the ASGI and traced paths): one that is
    done already (cancelled: nobody waits) is left as it is."""
    if not future.done():
        future.set_result(response)


class Dispatcher:
    """Requests in flight, each with the `Answer` its response goes to, resolved by id; `sweep`
    answers 504 at the deadline.

    Every request has the same timeout and the dict keeps arrival order, so the expired ones are
    always at its front: one sweep every `interval` costs nothing per request (a timer per
    request cost about 7 % of the importer's CPU). The answer is called straight from
    `resolve` (himporter's front writes the response from it): no future, no loop callback
    per request (about eight calls a request).
    """

    def __init__(self, metrics: Metrics, timeout: float) -> None:
        self.metrics = metrics
        self.timeout = timeout
        # request id -> (its answer, time.monotonic() when tracked): a tuple, not a dataclass
        # (no __init__ frame per request)
        self.pending: dict[str, tuple[Answer, float]] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def track(self, request_id: str, answer: Answer) -> None:
        """`answer` gets the response for `request_id`, or a 504 response at the timeout (or
        a 503 from `fail` or `cancel_all`): once."""
        self.pending[request_id] = (answer, time.monotonic())

    def resolve(self, response: Response, now: float | None = None) -> bool:
        """Deliver `response` to its waiting request; False (counted ``late``) when none waits.
        `now` is `time.monotonic()` when the caller has read it (for a batch of responses)."""
        pending = self.pending.pop(response.id, None)
        if pending is None:
            self.metrics.count("late")
            return False
        answer, started = pending
        answer(response)
        elapsed = (time.monotonic() if now is None else now) - started
        self.metrics.observe("response", elapsed * 1000)
        return True

    def fail(self, request_id: str, response: Response) -> None:
        """Answer a request that could not be dispatched (e.g. Redis down) with `response`."""
        pending = self.pending.pop(request_id, None)
        if pending is not None:
            pending[0](response)

    def cancel_all(self, status: int = 503) -> None:
        """Answer everything still waiting (at shutdown)."""
        for request_id in list(self.pending):
            self.fail(request_id, Response.text(request_id, "shutting down\n", status))

    def expire_due(self, now: float | None = None) -> int:
        """Answer 504 to every request older than the timeout; how many there were."""
        oldest = (time.monotonic() if now is None else now) - self.timeout
        expired = 0
        while self.pending:
            request_id, (answer, started) = next(iter(self.pending.items()))
            if started > oldest:
                break
            del self.pending[request_id]
            answer(Response.text(request_id, "gateway timeout\n", 504))
            expired += 1
        if expired:
            self.metrics.count("timeout", expired)
        return expired

    async def sweep(self, interval: float = 0.05) -> None:
        """Expire overdue requests every `interval` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.expire_due()
