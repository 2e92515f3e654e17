"""The rquery service: answer query requests from a queue, on each request's reply list.

A request is a query document (see `redline.rquery`) with two more fields::

    {"id": "r1", "reply": "app:replies:7", "parameters": {...}, "commands": [...]}

and its reply, pushed (LPUSH) onto ``reply``, is ``{"id": "r1", "values": {...}}`` or
``{"id": "r1", "error": {"code": "...", "message": "..."}}``. A request with no usable reply
list (malformed JSON, no ``reply``) is answered on ``{in}:errors`` with the raw request.

No request is lost if an instance is killed: each is moved (BLMOVE) from the input queue into the
instance's own pending list ``{in}:pending:<instance>`` and removed from there in the same script
that pushes its reply. An instance renews ``{in}:alive:<instance>`` (TTL ``lease``); the others
give the pending requests of an instance whose key expired back to the input queue.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio.cluster
from pydantic import Field, model_validator

from redline.config import ServiceConfig
from redline.connection import AsyncClient
from redline.errors import QueryError
from redline.keys import derived, hash_slot
from redline.rquery import Policy, parse_query, run_query
from redline.runner import Context
from redline.scripts import run

__all__ = ["RQueryConfig", "RQueryService", "answer"]

log = logging.getLogger(__name__)


class RQueryConfig(ServiceConfig):
    """Configuration of `redline rquery-service` (and the policy of `redline rquery`)."""

    in_queue: str = Field("rquery:in", alias="in", min_length=1, description="request queue")
    allow: list[str] = Field(
        default_factory=list, description="commands allowed beyond the read-only ones"
    )
    key_prefixes: list[str] = Field(default_factory=list, alias="keyPrefixes")
    reply_prefixes: list[str] = Field(default_factory=list, alias="replyPrefixes")
    reply_expire: int = Field(60, alias="replyExpire", gt=0, description="reply list TTL, s")
    max_commands: int = Field(100, alias="maxCommands", gt=0)
    lease: float = Field(30, gt=0, description="seconds a silent instance keeps its requests")

    @model_validator(mode="after")
    def _lease_outlives_a_pop(self) -> RQueryConfig:
        if self.lease < 2 * self.pop_timeout:
            raise ValueError(
                f"lease ({self.lease}) must be at least twice popTimeout ({self.pop_timeout}): "
                "an instance renews its lease between pops"
            )
        return self

    def policy(self) -> Policy:
        widened = Policy.widened(self.allow, self.key_prefixes)
        return Policy(widened.allowed, widened.key_prefixes, self.max_commands)


@dataclass(frozen=True)
class Answer:
    """Where a request's reply goes and what it says."""

    reply_to: str
    document: dict[str, Any]


def _request(raw: bytes) -> tuple[dict[str, Any], Any, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QueryError("malformed", f"the request is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise QueryError("malformed", "the request must be a JSON object with reply and commands")
    return data, data.pop("id", None), data.pop("reply", None)


def _error_doc(request_id: Any, error: QueryError) -> dict[str, Any]:
    doc: dict[str, Any] = {"error": error.document()}
    if request_id is not None:
        doc = {"id": request_id, **doc}
    return doc


def _check_reply(reply: Any, config: RQueryConfig) -> str:
    if not isinstance(reply, str) or not reply:
        raise QueryError("invalid", f"'reply' must name a list to answer on, got {reply!r}")
    if config.reply_prefixes and not reply.startswith(tuple(config.reply_prefixes)):
        raise QueryError(
            "disallowed-key",
            f"reply list {reply!r} does not start with an allowed prefix {config.reply_prefixes}",
        )
    return reply


async def answer(client: AsyncClient, raw: bytes, config: RQueryConfig) -> Answer:
    """Run one raw request and say where its reply goes (``{in}:errors`` when it names none)."""
    errors = derived(config.in_queue, "errors")
    try:
        data, request_id, reply = _request(raw)
    except QueryError as exc:
        doc = {**_error_doc(None, exc), "request": raw.decode(errors="replace")}
        return Answer(errors, doc)
    try:
        reply_to = _check_reply(reply, config)
    except QueryError as exc:
        return Answer(errors, {**_error_doc(request_id, exc), "request": data})
    try:
        policy = config.policy()
        result = await run_query(client, parse_query(data, policy), policy)
    except QueryError as exc:
        return Answer(reply_to, _error_doc(request_id, exc))
    return Answer(reply_to, result if request_id is None else {"id": request_id, **result})


def _instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RQueryService:
    """Pops requests, runs them, replies. Also a runner hook: it recovers dead instances' work."""

    name = "rquery"

    def __init__(self, config: RQueryConfig, instance: str | None = None) -> None:
        self.config = config
        self.instance = instance or _instance_name()
        self.pending = derived(config.in_queue, "pending", self.instance)
        self.alive = derived(config.in_queue, "alive", self.instance)
        self.instances = derived(config.in_queue, "instances")
        self._renewed = 0.0
        self._recovered = 0.0
        self._resume = True  # look at our own pending list first (after a start or a failure)

    async def step(self, ctx: Context) -> None:
        """Answer one request, or wait up to popTimeout for one."""
        await self._renew(ctx.redis)
        raw = await self._next(ctx.redis)
        if raw is None:
            await self._recover_maybe(ctx.redis)
            return
        self._resume = True  # until the reply is written, a failure leaves it in pending
        result = await answer(ctx.redis, raw, self.config)
        await self._reply(ctx.redis, raw, result)
        self._resume = False

    async def _next(self, client: AsyncClient) -> bytes | None:
        if self._resume:
            raw = await client.lindex(self.pending, -1)
            if isinstance(raw, bytes):
                return raw
            self._resume = False
        timeout = min(self.config.pop_timeout, self.config.lease / 3)
        moved = await client.blmove(
            self.config.in_queue,
            self.pending,
            timeout,  # type: ignore[arg-type]  # redis-py says int; the server takes seconds as float
            "RIGHT",
            "LEFT",
        )
        return moved if isinstance(moved, bytes) else None

    async def _reply(self, client: AsyncClient, raw: bytes, result: Answer) -> None:
        document = json.dumps(result.document)
        if "error" in result.document:
            log.info("request refused reply=%s error=%s", result.reply_to, document)
        expire = self.config.reply_expire
        cross_slot = hash_slot(result.reply_to) != hash_slot(self.pending)
        if isinstance(client, redis.asyncio.cluster.RedisCluster) and cross_slot:
            # One atomic step is impossible across slots: reply first, so a crash between the two
            # answers the request twice rather than never (the queries only read).
            pipe = client.pipeline(transaction=False)
            pipe.lpush(result.reply_to, document)
            pipe.expire(result.reply_to, expire)
            await pipe.execute()
            await client.lrem(self.pending, -1, raw)  # type: ignore[arg-type]
            return
        await run(client, "rquery_reply", [self.pending, result.reply_to], [raw, document, expire])

    async def _renew(self, client: AsyncClient) -> None:
        now = time.monotonic()
        if now - self._renewed < self.config.lease / 3:
            return
        await client.set(self.alive, "1", px=int(self.config.lease * 1000))
        await client.sadd(self.instances, self.instance)
        self._renewed = now

    async def _recover_maybe(self, client: AsyncClient) -> None:
        now = time.monotonic()
        if now - self._recovered >= self.config.lease / 2:
            self._recovered = now
            await recover(client, self.config.in_queue, skip=self.instance)

    # Hook protocol: recover at start, leave the pending list to the others at stop.
    async def start(self, ctx: Context) -> None:
        await self._renew(ctx.redis)
        await recover(ctx.redis, self.config.in_queue, skip=self.instance)

    async def tick(self, ctx: Context) -> None:
        return None

    async def stop(self, ctx: Context) -> None:
        # A clean stop hands back anything left in hand at once instead of after the lease.
        await ctx.redis.delete(self.alive)
        await recover(ctx.redis, self.config.in_queue, only=self.instance)


async def recover(
    client: AsyncClient, in_queue: str, skip: str | None = None, only: str | None = None
) -> int:
    """Return the pending requests of instances whose lease expired to `in_queue`."""
    instances = derived(in_queue, "instances")
    members = [only] if only else await client.smembers(instances)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in members]
    total = 0
    for name in names:
        if name == skip:
            continue
        keys = [in_queue, derived(in_queue, "pending", name), derived(in_queue, "alive", name)]
        moved = int(await run(client, "rquery_recover", [*keys, instances], [name]))
        if moved > 0:
            log.warning("recovered requests=%d of stopped instance=%s", moved, name)
        total += max(moved, 0)
    return total
