"""The rquery service: answer query requests from a queue, on each request's reply list.

A request is a query document (see `redline.rquery`) with two more fields::

    {"id": "r1", "reply": "app:replies:7", "parameters": {...}, "commands": [...]}

and its reply, pushed (LPUSH) onto ``reply``, is ``{"id": "r1", "values": {...}}`` or
``{"id": "r1", "error": {"code": "...", "message": "..."}}``. A request with no usable reply
list (malformed JSON, no ``reply``) is answered on ``{in}:errors`` with the raw request.

No request is lost if an instance is killed: each is moved (BLMOVE) from the input queue into the
instance's own pending list ``{in}:pending:<id>`` and removed from there in the same script that
pushes its reply. The pending lists are those of `redline.services.pending` (as for mpush): the
instance registers with the lifecycle, and the pending requests of an instance whose lifecycle
hash expired go back to the input queue.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio.cluster
from pydantic import Field

from redline.config import ServiceConfig
from redline.connection import AsyncClient
from redline.errors import QueryError
from redline.keys import derived, hash_slot
from redline.rquery.query import Policy, parse_query, run_query
from redline.runtime import Context, Hook, assemble
from redline.runtime.metrics import Metrics
from redline.scripting.scripts import run
from redline.services.pending import PendingClaims, pending_base

__all__ = ["RQueryConfig", "RQueryService", "answer", "build"]

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


class RQueryService(PendingClaims):
    """Takes requests, runs them, replies. As a `Hook` it owns and recovers the pending lists."""

    name = "rquery"

    def __init__(self, config: RQueryConfig, metrics: Metrics) -> None:
        super().__init__(self.name, config.in_queue, pending_base(config.in_queue), config)
        self.config, self.metrics = config, metrics
        self._resume = True  # look at our own pending list first (after a start or a failure)

    async def step(self, ctx: Context) -> None:
        """Answer one request, or wait up to popTimeout for one."""
        resume, self._resume = self._resume, True  # a failure below leaves a request in pending
        raw = await self._next(ctx, resume)
        if raw is not None:
            began = time.monotonic()
            result = await answer(ctx.redis, raw, self.config)
            await self._reply(ctx.redis, raw, result)
            self.metrics.observe("answered", (time.monotonic() - began) * 1000, histogram=False)
            if "error" in result.document:
                self.metrics.count("refused")
        self._resume = False

    async def _next(self, ctx: Context, resume: bool) -> bytes | None:
        if resume:
            raw = await ctx.redis.lindex(self.mine, -1)
            if isinstance(raw, bytes):
                return raw
        return await self.claim(ctx, self.config.pop_timeout)

    async def _reply(self, client: AsyncClient, raw: bytes, result: Answer) -> None:
        document = json.dumps(result.document)
        if "error" in result.document:
            log.info("request refused reply=%s error=%s", result.reply_to, document)
        expire = self.config.reply_expire
        cross_slot = hash_slot(result.reply_to) != hash_slot(self.mine)
        if isinstance(client, redis.asyncio.cluster.RedisCluster) and cross_slot:
            # One atomic step is impossible across slots: reply first, so a crash between the two
            # answers the request twice rather than never (the queries only read).
            pipe = client.pipeline(transaction=False)
            pipe.lpush(result.reply_to, document)
            pipe.expire(result.reply_to, expire)
            await pipe.execute()
            await client.lrem(self.mine, -1, raw)  # type: ignore[arg-type]
            return
        await run(client, "rquery_reply", [self.mine, result.reply_to], [raw, document, expire])


def build(config: RQueryConfig) -> tuple[RQueryService, list[Hook]]:
    """The rquery service and its hooks, for `redline.runtime.run_service`; its pending list
    sits beside ``in``, so its namespace does too."""
    serves = f"{config.in_queue} -> replies"
    assembly = assemble("rquery", config, queue=config.in_queue, serves=serves)
    service = RQueryService(config, assembly.metrics)
    return service, assembly.hooks(service)
