"""Message tracking: ids, deadlines, and the monitors that turn them into metrics.

Key layout (the seed's; every name built here):

- ``<ns>:message:id`` — INCR counter of message ids
- ``<ns>:message:ids`` — the ids being tracked, newest first (at most ``messageCapacity``; past
  it, tracking is skipped and counted in ``<ns>:metrics:capacity``)
- ``<ns>:message:<id>`` — hash ``{timestamp, deadline, service, xid}`` (milliseconds since the
  epoch) expiring after ``messageExpire`` seconds
- ``<ns>:message:xid:<xid>`` — the id of the message whose payload has SHA-1 ``xid``

A worker reports completion by pushing onto the ``done`` list either the message id or the SHA-1
hex of the payload it handled (`xid`; any language computes it). On every tick the monitors:

- done: pop reports, record ``<ns>:metrics:done`` (time from tracking to done, histogram in
  tenths of ``messageTimeout``), forget the message;
- timeout: count each message past its deadline once, in ``<ns>:metrics:timeout``;
- expiry: remove ids whose hash expired from ``<ns>:message:ids``, counted in ``…:expired``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from redline.config import ServiceConfig
from redline.connection import AsyncClient, text
from redline.runtime.context import Context
from redline.runtime.metrics import Metrics

__all__ = [
    "TrackedConfig",
    "Tracker",
    "message_counter_key",
    "message_ids_key",
    "message_key",
    "xid",
    "xid_key",
]

log = logging.getLogger(__name__)

DONE_BATCH = 100


class TrackedConfig(ServiceConfig):
    """Fields of services that track their messages (the seed's names)."""

    message_expire: int = Field(60, alias="messageExpire", gt=0)
    message_timeout: float = Field(10, alias="messageTimeout", gt=0)
    message_capacity: int = Field(1000, alias="messageCapacity", gt=0)
    done: str | None = Field(None, description="list where workers report completed messages")


def message_counter_key(ns: str) -> str:
    return f"{ns}:message:id"


def message_ids_key(ns: str) -> str:
    return f"{ns}:message:ids"


def message_key(ns: str, message_id: str | int) -> str:
    return f"{ns}:message:{message_id}"


def xid_key(ns: str, message_xid: str) -> str:
    return f"{ns}:message:xid:{message_xid}"


def xid(payload: bytes) -> str:
    """The id a worker may report instead of the message id: SHA-1 hex of the payload."""
    return hashlib.sha1(payload).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Tracker:
    """Tracks messages a service hands on; as a `Hook`, runs the done/timeout/expiry monitors.

    `client` methods take the lifecycle client (``serviceRedis`` when set); the ``done`` list is
    read from the service's own server, where workers push.
    """

    namespace: str
    service: str
    metrics: Metrics
    done: str | None = None
    expire: int = 60
    timeout: float = 10
    capacity: int = 1000

    async def track(self, client: AsyncClient, payloads: Sequence[bytes]) -> list[int]:
        """Register `payloads` as sent now; returns their ids ([] when over capacity)."""
        if not payloads:
            return []
        if await client.llen(message_ids_key(self.namespace)) >= self.capacity:
            self.metrics.count("capacity", len(payloads))
            return []
        last = int(await client.incrby(message_counter_key(self.namespace), len(payloads)))
        ids = list(range(last - len(payloads) + 1, last + 1))
        now = _now_ms()
        pipe = client.pipeline(transaction=False)
        for ident, payload in zip(ids, payloads, strict=True):
            self._write(pipe, ident, payload, now)
        pipe.lpush(message_ids_key(self.namespace), *ids)
        await pipe.execute()
        return ids

    def _write(self, pipe: object, ident: int, payload: bytes, now: int) -> None:
        key, sha = message_key(self.namespace, ident), xid(payload)
        fields = {
            "timestamp": now,
            "deadline": now + int(self.timeout * 1000),
            "service": self.service,
            "xid": sha,
        }
        pipe.hset(key, mapping=fields)  # type: ignore[attr-defined]
        pipe.expire(key, self.expire)  # type: ignore[attr-defined]
        pipe.set(xid_key(self.namespace, sha), ident, ex=self.expire)  # type: ignore[attr-defined]

    async def start(self, ctx: Context) -> None:
        return None

    async def tick(self, ctx: Context) -> None:
        if self.done:
            while await self.monitor_done(ctx.redis, ctx.lifecycle_redis) == DONE_BATCH:
                pass
        await self.monitor_ids(ctx.lifecycle_redis)

    async def stop(self, ctx: Context) -> None:
        return None

    async def monitor_done(self, queue: AsyncClient, client: AsyncClient) -> int:
        """Handle up to DONE_BATCH completion reports; returns how many were popped."""
        assert self.done is not None
        reports = await queue.rpop(self.done, DONE_BATCH) or []
        now = _now_ms()
        for report in reports:
            ident = await self._resolve(client, text(report))
            if ident is None:
                log.debug("ns=%s done report %r: unknown or expired", self.namespace, report)
                continue
            stamp = await client.hget(message_key(self.namespace, ident), "timestamp")
            if stamp is not None:
                self.metrics.observe("done", now - int(text(stamp)))
            await self._forget(client, ident)
        return len(reports)

    async def _resolve(self, client: AsyncClient, report: str) -> str | None:
        if report.isdigit():
            return report
        found = await client.get(xid_key(self.namespace, report))
        return None if found is None else text(found)

    async def _forget(self, client: AsyncClient, ident: str) -> None:
        key = message_key(self.namespace, ident)
        sha = await client.hget(key, "xid")
        pipe = client.pipeline(transaction=False)
        pipe.delete(key)
        if sha is not None:
            pipe.delete(xid_key(self.namespace, text(sha)))
        pipe.lrem(message_ids_key(self.namespace), 0, ident)
        await pipe.execute()

    async def monitor_ids(self, client: AsyncClient) -> None:
        """Count new timeouts once each; drop ids whose hash expired (counted as expired)."""
        ids = [text(i) for i in await client.lrange(message_ids_key(self.namespace), 0, -1)]
        if not ids:
            return
        pipe = client.pipeline(transaction=False)
        for ident in ids:
            pipe.hmget(message_key(self.namespace, ident), ["deadline", "timedOut"])
        now = _now_ms()
        for ident, (deadline, timed_out) in zip(ids, await pipe.execute(), strict=True):
            if deadline is None:
                if await client.lrem(message_ids_key(self.namespace), 0, ident):
                    self.metrics.count("expired")
            elif timed_out is None and now > int(text(deadline)):
                key = message_key(self.namespace, ident)
                if await client.hsetnx(key, "timedOut", now):
                    self.metrics.count("timeout")
