"""What the rest of the layer asks of a client: its types, whether it is a cluster client,
and the one reply-decoding helper."""

from __future__ import annotations

from typing import TypeAlias

import redis
import redis.asyncio
import redis.cluster

__all__ = ["AsyncClient", "SyncClient", "is_cluster_client", "text"]

AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.RedisCluster"
SyncClient: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"


def is_cluster_client(client: object) -> bool:
    """True for a Redis Cluster client, asyncio or blocking. Answered once per class: redis-py's
    cluster classes are typing protocols, whose isinstance checks cost ~1 µs (a consumer step
    made three)."""
    kind = type(client)
    known = _CLUSTER_CLASSES.get(kind)
    if known is None:
        clusters = (redis.asyncio.RedisCluster, redis.cluster.RedisCluster)
        known = _CLUSTER_CLASSES[kind] = issubclass(kind, clusters)
    return known


_CLUSTER_CLASSES: dict[type, bool] = {}


def text(reply: object, errors: str = "strict") -> str:
    """A reply as str: bytes decoded as UTF-8 (`errors` as for `bytes.decode`), anything else
    through ``str()``. The one decoding helper: redline's clients return bytes."""
    return reply.decode(errors=errors) if isinstance(reply, bytes) else str(reply)
