"""What every HTTP handler service shares: pop requests, answer or forward each, ack.

One step is one round trip (`ReliableQueue.pop_after`): it sends the outcomes of the batch it
worked out last (a `Response` LPUSHed onto the reply list named in the envelope, or a `Forward`
LPUSHed onto another queue, as hrouter does), acks the batch before that (whose outcomes the
previous round trip delivered), and pops the next batch. A batch is acked only once its outcomes
are in Redis: a replica killed at any point leaves its requests in flight, and when their lease
runs out a surviving replica's pop takes them again. After a batch that emptied the queue, the
step sends its outcomes alone (a pop then would most likely come back empty: a pop is the
costly part of a step, in the server and in the client), and the next one acks it with its pop.

A request whose deadline has passed is acked without an answer (the importer has already sent
504); a handler still working at the deadline is cancelled. A payload that is not an envelope is
dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from pydantic import Field

from redline.config import ServiceConfig
from redline.connection import Command, run_commands
from redline.errors import EnvelopeError
from redline.http.envelope import Request, Response
from redline.queue import Delivery, ReliableQueue
from redline.runtime import Context, Hook, assemble
from redline.runtime.tracing import tracer, with_carrier

__all__ = ["Forward", "HttpService", "Outcome", "WorkerConfig"]

log = logging.getLogger(__name__)

REPLY_TTL = 60  # seconds a reply list outlives its last reply (its importer may be gone)


class WorkerConfig(ServiceConfig):
    """Fields every HTTP handler service has."""

    in_: str = Field(alias="in", description="the queue this service pops requests from")
    batch: int = Field(64, gt=0, description="requests taken per pop")
    lease: float = Field(
        1, gt=0, description="seconds before a dead replica's requests return (kept alive)"
    )
    max_deliveries: int = Field(5, alias="maxDeliveries", gt=0)
    pop_timeout: float = Field(1, alias="popTimeout", gt=0)
    concurrency: int = Field(64, gt=0, description="requests at once (hrender, handlers)")


class Forward(msgspec.Struct, frozen=True):
    """Send `request` on to `queue` (instead of answering it). (A msgspec struct: hrouter
    makes one per request, in a sixth of a frozen dataclass's time.)"""

    queue: str
    request: Request


Outcome = Response | Forward | None


class HttpService:
    """Base of hrouter, hassets, hrender and handler services: override `respond`.

    Quick services (hrouter, hassets) answer a batch one request after another and ack it
    whole with their next pop (same round trip). `concurrent` ones (hrender, handlers) run
    each request as a task of its own, up to ``concurrency`` at once, each bounded by its
    deadline with its lease kept alive meanwhile, and keep popping while slow ones run. Run it
    with `hooks()` so that a stop waits for them (and acks the last batch).

    Its namespace is ``serviceNamespace``, else ``redline:<name>`` (`redline.runtime.assemble`).
    """

    name = "http"
    concurrent = False

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.assembly = assemble(self.name, config, serves=f"{config.in_} -> replies")
        self.metrics = self.assembly.metrics
        self._queue: ReliableQueue | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._sends: list[Command] = []  # the outcomes of the last batch, for the next step
        self._answered: list[Delivery] = []  # that batch: acked once the sends are in
        self._unacked: list[Delivery] = []  # answered and sent; acked by the next pop
        self._drained = False  # the last pop came back short of a batch: the queue was empty

    def hooks(self) -> list[Hook]:
        """The runner hooks: the assembly's (lifecycle, metrics, …), then the service itself
        (it drains running requests at stop)."""
        return self.assembly.hooks(self)

    async def start(self, ctx: Context) -> None:
        return None

    async def tick(self, ctx: Context) -> None:
        return None

    async def stop(self, ctx: Context) -> None:
        """Wait for requests still running (each ends by its deadline at the latest), send the
        last batch's outcomes and ack what was sent."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        sent = self._sent(await run_commands(ctx.redis, self._sends))
        done = self._unacked + (self._answered if sent else [])
        self._sends, self._answered, self._unacked = [], [], []
        if done:
            await self.queue(ctx).ack(*done)

    async def respond(self, ctx: Context, request: Request) -> Outcome:
        raise NotImplementedError

    def queue(self, ctx: Context) -> ReliableQueue:
        if self._queue is None:
            # Popping as its instance: the batches it holds name it (redline.runtime.holders).
            self._queue = ReliableQueue(
                ctx.redis,
                lease=self.config.lease,
                max_deliveries=self.config.max_deliveries,
                consumer=ctx.instance_key or None,
            )
        return self._queue

    async def step(self, ctx: Context) -> None:
        if self.concurrent:
            await self._step_concurrent(ctx)
            return
        queue, config = self.queue(ctx), self.config
        # If the round trip fails, `_unacked` is acked by the next one; the batch whose sends
        # may not have gone out is left to its lease (redelivered, answered again).
        sends, answered = self._sends, self._answered
        self._sends, self._answered = [], []
        if answered and self._drained:
            await self._send_only(ctx, sends, answered)
            return
        # The batch answered now is acked by the next step, so this one does not wait on an
        # idle queue: a replica holds no answered request longer than a round trip (its lease
        # cannot run out meanwhile, and the queue's in-flight count is work under way).
        block = None if answered else config.pop_timeout
        results, batch = await queue.pop_after(
            sends, config.in_, count=config.batch, block=block, ack=self._unacked
        )
        self._unacked = answered if self._sent(results) else []
        self._drained = len(batch) < config.batch
        if not batch:
            return
        requests = await self._decode(queue, batch)
        live = self._live([r for _, r in requests])
        # Untraced (tracing off is one check per batch), each request goes to `_answer`
        # straight: a coroutine and a `tracer()` call less per request.
        answer = self._answer if tracer() is None else self._safe
        outcomes = [await answer(ctx, r) for r in live]
        if live:
            self.metrics.count("requests", len(live))  # (per batch, not a call per request)
        self._sends = _commands(zip(live, outcomes, strict=True))
        self._answered = [d for d, _ in requests]

    async def _send_only(
        self, ctx: Context, sends: list[Command], answered: list[Delivery]
    ) -> None:
        """The step after a batch that emptied the queue: send its outcomes without a pop (one
        now would most likely come back empty); the next step's pop acks it, and takes
        whatever arrived meanwhile, in the round trip that follows at once. The sends go over
        the connection the queue pops over (`ReliableQueue.send`)."""
        if self._sent(await self.queue(ctx).send(sends)):
            self._unacked = [*self._unacked, *answered]

    async def _step_concurrent(self, ctx: Context) -> None:
        queue, config = self.queue(ctx), self.config
        self._running = {task for task in self._running if not task.done()}
        room = config.concurrency - len(self._running)
        if room <= 0:
            await asyncio.wait(
                self._running, timeout=config.pop_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            return
        batch = await queue.pop(config.in_, count=min(room, config.batch), block=config.pop_timeout)
        for delivery in batch:
            self._running.add(asyncio.create_task(self._one(ctx, queue, delivery)))

    async def _one(self, ctx: Context, queue: ReliableQueue, delivery: Delivery) -> None:
        """One request of a concurrent service: answer, send, ack (a failure leaves the lease
        to run out, so that the request is redelivered)."""
        try:
            live = self._live([r for _, r in await self._decode(queue, [delivery])])
            for request in live:  # (one or none)
                async with queue.keep_leases([delivery]):
                    outcome = await self._bounded(ctx, request)
                if not self._sent(await run_commands(ctx.redis, _commands([(request, outcome)]))):
                    return  # the lease runs out: redelivered
            await queue.ack(delivery)
        except Exception as exc:
            log.warning("%s could not finish id=%s error=%r", self.name, delivery.id, exc)

    async def _decode(
        self, queue: ReliableQueue, batch: Sequence[Delivery]
    ) -> list[tuple[Delivery, Request]]:
        """The requests of `batch` (in a loop, not a coroutine per request); a payload that is
        not an envelope is dead-lettered with the reason."""
        decoded = []
        for delivery in batch:
            try:
                request = Request.decode(delivery.payload)
            except EnvelopeError as exc:
                log.warning("%s dead-lettered id=%s reason=%s", self.name, delivery.id, exc)
                await queue.dead_letter(delivery, reason=str(exc))
                continue
            if delivery.deliveries > 1:
                self.metrics.count("redelivered")
                log.info(
                    "%s redelivered id=%s deliveries=%d", self.name, request.id, delivery.deliveries
                )
            decoded.append((delivery, request))
        return decoded

    def _live(self, requests: list[Request]) -> list[Request]:
        """`requests` but those past their deadline (counted ``expired``, logged): one clock
        reading for requests popped together."""
        now = time.time()
        # `Request.expired(now)` written out: no call per request.
        live = [r for r in requests if not r.deadline or now <= r.deadline]
        if len(live) < len(requests):
            for request in requests:
                if request.expired(now):
                    self.metrics.count("expired")
                    log.info(
                        "%s skipped expired id=%s path=%s", self.name, request.id, request.path
                    )
        return live

    async def _safe(self, ctx: Context, request: Request) -> Outcome:
        traced = tracer()
        if traced is None:
            return await self._answer(ctx, request)
        with traced.process(self.config.in_, dict(request.headers), request.id) as carrier:
            outcome = await self._answer(ctx, request)
            if isinstance(outcome, Forward):  # the next hop continues this span
                headers = with_carrier(outcome.request.headers, carrier)
                outcome = Forward(
                    outcome.queue, msgspec.structs.replace(outcome.request, headers=headers)
                )
            return outcome

    async def _answer(self, ctx: Context, request: Request) -> Outcome:
        """The outcome of `request`, with ``errors`` counted for a 5xx answer (what an
        instance's health, and a rollout's, is judged by, against ``requests``: its callers
        count those, a batch at a time where they can)."""
        try:
            outcome = await self.respond(ctx, request)
        except Exception:
            log.exception("%s failed id=%s path=%s", self.name, request.id, request.path)
            outcome = Response.text(request.id, "internal server error\n", 500)
        if isinstance(outcome, Response) and outcome.status >= 500:
            self.metrics.count("errors")
        return outcome

    async def _bounded(self, ctx: Context, request: Request) -> Outcome:
        remaining = request.deadline - time.time() if request.deadline else None
        try:
            outcome = await asyncio.wait_for(self._safe(ctx, request), remaining)
        except TimeoutError:
            self.metrics.count("expired")
            log.warning(
                "%s gave up at the deadline id=%s path=%s", self.name, request.id, request.path
            )
            return None
        self.metrics.count("requests")
        return outcome

    def _sent(self, results: list[Any]) -> bool:
        """Whether every send of a step went in (a failed one leaves its batch to the lease)."""
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            self.metrics.count("sendfailed")
            log.warning("%s could not send answers error=%r", self.name, errors[0])
        return not errors


def _commands(outcomes: Iterable[tuple[Request, Outcome]]) -> list[Command]:
    """The commands that deliver `outcomes`: one LPUSH per target queue (a plain LPUSH is a
    ReliableQueue push without ids: the envelope carries the request's id), one LPUSH and an
    EXPIRE per reply list."""
    replies: dict[str, list[bytes]] = defaultdict(list)
    forwards: dict[str, list[bytes]] = defaultdict(list)
    for request, outcome in outcomes:
        if isinstance(outcome, Response) and request.reply:
            replies[request.reply].append(outcome.encode())
        elif isinstance(outcome, Forward):
            forwards[outcome.queue].append(outcome.request.encode())
    commands: list[Command] = [("LPUSH", key, *payloads) for key, payloads in forwards.items()]
    for key, payloads in replies.items():
        commands += [("LPUSH", key, *payloads), ("EXPIRE", key, REPLY_TTL)]
    return commands
