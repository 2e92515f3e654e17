"""What the rest of the layer asks of a client: its types, whether it is a cluster client,
how long it waits for a reply, and the one reply-decoding helper."""

from __future__ import annotations

from typing import TypeAlias

import redis
import redis.asyncio
import redis.cluster

__all__ = [
    "AsyncClient",
    "SyncClient",
    "is_cluster_client",
    "longest_block",
    "read_timeout",
    "text",
]

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


def read_timeout(client: AsyncClient | SyncClient) -> float | None:
    """Seconds the client's connections wait for a reply (None: for ever). The one it was made
    with, else the library's default, which is then not among the client's connection kwargs
    (redis-py 8: 5 s) — read from a connection made with nothing (made, not opened; the
    blocking and asyncio connections share the default)."""
    kwargs = client.get_connection_kwargs()
    timeout = kwargs["socket_timeout"] if "socket_timeout" in kwargs else _library_default()
    return None if timeout is None else float(timeout)


def _library_default() -> float | None:
    return redis.asyncio.Connection().socket_timeout


def text(reply: object, errors: str = "strict") -> str:
    """A reply as str: bytes decoded as UTF-8 (`errors` as for `bytes.decode`), anything else
    through ``str()``. The one decoding helper: redline's clients return bytes."""
    return reply.decode(errors=errors) if isinstance(reply, bytes) else str(reply)


def longest_block(client: AsyncClient | SyncClient) -> float:
    """Seconds one blocking command (BLMOVE) may wait on `client`: it must answer within the
    client's read timeout, and servers time blocked clients out up to ~100 ms late."""
    timeout = read_timeout(client)
    if not timeout:
        return 3600.0
    return timeout - 0.5 if timeout > 1 else timeout / 4
