"""Service lifecycle: register an instance, renew it, stop when told to through Redis.

The key layout is the seed's (every name built by the functions below, and nowhere else):

- ``<ns>:id`` — INCR counter of instance ids
- ``<ns>:<id>`` — hash ``{host, pid, started, renewed, service, version, serves}`` (and
  ``revision``, the deploy revision it runs, when it has one) with a TTL of
  ``serviceExpire`` seconds, renewed every ``serviceRenew`` seconds
- ``<ns>:ids`` — list of recent ids (newest on the left), trimmed to ``serviceCapacity``

Deleting ``<ns>:<id>`` (``redis-cli del demo:mpush:9``) stops that instance: the hook checks its
hash every `check_interval` seconds and raises `ShutdownRequested` when it is missing or was
rewritten by someone else. A hash missing on a server that lost its data as well (its
``<ns>:id`` counter is gone too: a server restarted without persistence, a flush) is not a
request to stop: the instance registers again under its own id, and the counter is raised to
it. A clean stop deletes the hash and removes the id from ``<ns>:ids``; at start-up, ids whose
hash has expired are removed from ``<ns>:ids``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from redline import __version__
from redline.connection import AsyncClient, text
from redline.errors import ShutdownRequested
from redline.runtime.context import Context
from redline.scripting import scripts

__all__ = [
    "Lifecycle",
    "check_interval",
    "counter_key",
    "ids_key",
    "instance_key",
    "is_alive",
    "registry_key",
]

log = logging.getLogger(__name__)

# How often an instance looks at its own hash, at most: remote shutdown takes at most this long
# to be noticed (the blocking pop is interrupted at once when it is).
MAX_CHECK_INTERVAL = 1.0


def counter_key(ns: str) -> str:
    """``<ns>:id``: the INCR counter that hands out instance ids."""
    return f"{ns}:id"


def instance_key(ns: str, instance_id: str | int) -> str:
    """``<ns>:<id>``: the hash describing one running instance."""
    return f"{ns}:{instance_id}"


def ids_key(ns: str) -> str:
    """``<ns>:ids``: the recent instance ids, newest first."""
    return f"{ns}:ids"


REGISTRY_KEY = "redline:registry"


def registry_key() -> str:
    """``redline:registry``: namespace → JSON ``{"service", "version", "serves"}``, so that
    discovery (`redline.scaling.registry`) finds every namespace without scanning keys."""
    return REGISTRY_KEY


def check_interval(renew: float, pop_timeout: float) -> float:
    """The tick interval that lets a deleted hash be noticed well within ``popTimeout``."""
    return max(0.05, min(renew, pop_timeout / 2, MAX_CHECK_INTERVAL))


async def is_alive(client: AsyncClient, instance_hash: str) -> bool:
    """True while the lifecycle hash `instance_hash` exists (it expires when renewal stops)."""
    return bool(await client.exists(instance_hash))


async def compact(client: AsyncClient, ns: str) -> list[str]:
    """Remove from ``<ns>:ids`` the ids whose hash has expired or was deleted; return them."""
    removed = []
    for raw in await client.lrange(ids_key(ns), 0, -1):
        ident = text(raw)
        if not await client.exists(instance_key(ns, ident)):
            await client.lrem(ids_key(ns), 0, ident)
            removed.append(ident)
    return removed


@dataclass
class Lifecycle:
    """The lifecycle `Hook`: register on start, renew (and watch) on tick, unregister on stop.

    `serves` says what the instance works on (``"demo:mpush:in -> demo:mpush:out0,…"``); it is
    written to the hash so an operator can tell instances apart.
    """

    namespace: str
    service: str
    serves: str = ""
    expire: int = 60
    renew: float = 15
    capacity: int = 10
    revision: int = 0  # the deploy revision (`redline.scaling.rollout`); 0: none
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: int = 0
    key: str = ""

    _renewed_at: float = 0.0

    async def start(self, ctx: Context) -> None:
        client = ctx.lifecycle_redis
        stale = await compact(client, self.namespace)
        if stale:
            log.info("ns=%s compacted ids=%s (hash expired)", self.namespace, ",".join(stale))
        ident = str(await client.incr(counter_key(self.namespace)))
        key, self.started = instance_key(self.namespace, ident), int(time.time())
        await self._register(client, key, ident)
        self.key = key  # set last: a non-empty key means "registered"
        ctx.instance_id, self._renewed_at = ident, time.monotonic()
        ctx.instance_key, ctx.namespace = self.key, self.namespace
        log.info("registered %s host=%s pid=%s", self.key, self.host, self.pid)
        log.info("renew: started %s every=%ss expire=%ss", self.key, self.renew, self.expire)

    async def _register(self, client: AsyncClient, key: str, ident: str) -> None:
        record = {"service": self.service, "version": __version__, "serves": self.serves}
        async with client.pipeline(transaction=False) as pipe:  # keys in several slots
            pipe.hset(key, mapping=self._fields())
            pipe.expire(key, self.expire)
            pipe.hset(registry_key(), self.namespace, json.dumps(record))
            pipe.lpush(ids_key(self.namespace), ident)
            pipe.ltrim(ids_key(self.namespace), 0, self.capacity - 1)
            await pipe.execute()

    async def _rejoin(self, client: AsyncClient) -> bool:
        """After the hash was found missing: if the server lost its data (the counter is gone
        too), register again under the same id (what holds the instance's key, such as its
        queue consumer name, stays right) and say so; otherwise it was a request to stop."""
        counter = counter_key(self.namespace)
        if await client.exists(counter):
            return False
        ident = self.key.rsplit(":", 1)[1]
        await scripts.run(client, "counter_floor", [counter], [ident])
        await self._register(client, self.key, ident)
        self._renewed_at = time.monotonic()
        log.warning(
            "ns=%s the server lost its data (the hash and %s are gone: restarted without"
            " persistence?): registered %s again",
            self.namespace,
            counter,
            self.key,
        )
        return True

    def _fields(self) -> dict[Any, str | int]:
        revision: dict[Any, str | int] = {"revision": self.revision} if self.revision else {}
        return revision | {
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "renewed": self.started,
            "service": self.service,
            "version": __version__,
            "serves": self.serves,
        }

    async def tick(self, ctx: Context) -> None:
        due = time.monotonic() - self._renewed_at >= self.renew
        args = (self.host, self.pid, self.started, int(time.time()), self.expire, int(due))
        state = await scripts.run(ctx.lifecycle_redis, "lifecycle_renew", [self.key], args)
        if state == 0 and await self._rejoin(ctx.lifecycle_redis):
            return
        if state == 0:
            raise ShutdownRequested(f"lifecycle hash {self.key} was deleted")
        if state != 1:
            raise ShutdownRequested(f"lifecycle hash {self.key} was changed by someone else")
        if due:
            self._renewed_at = time.monotonic()

    async def stop(self, ctx: Context) -> None:
        if not self.key:
            return
        client = ctx.lifecycle_redis
        ident = self.key.rsplit(":", 1)[1]
        state = await scripts.run(
            client, "lifecycle_renew", [self.key], (self.host, self.pid, self.started, 0, 0, 0)
        )
        deleted = await client.delete(self.key) if state == 1 else 0
        removed = await client.lrem(ids_key(self.namespace), 0, ident)
        log.info("ended %s del=%s lrem=%s", self.key, deleted, removed)
