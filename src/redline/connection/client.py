"""Redis URL → client: `connect` and `connect_sync` build the client a URL names (the forms
understood: `redline.connection.url`), a blocking pool on a single server
(`redline.connection.pool`), commands packed by hiredis (`redline.connection.packing`).

The names of the layer's other modules are importable from here too, as they were before
this module was split (`redline.connection` is the API the rest of redline uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
import redis.utils

from redline.connection.held import Command as Command
from redline.connection.held import HeldConnection as HeldConnection
from redline.connection.held import run_commands as run_commands
from redline.connection.internals import sentinels_of
from redline.connection.kinds import AsyncClient, SyncClient
from redline.connection.kinds import is_cluster_client as is_cluster_client
from redline.connection.kinds import text as text
from redline.connection.packing import _PACKER, pack_with_hiredis
from redline.connection.packing import _HiredisPacking as _HiredisPacking
from redline.connection.pool import MAX_CONNECTIONS, POOL_TIMEOUT, AsyncBlockingPool, BlockingPool
from redline.connection.url import RedisURL, parse_url
from redline.connection.url import is_cluster as is_cluster
from redline.connection.url import mask_url as mask_url

# Its own names. The `X as X` imports above keep what this module held before it was split
# importable from it (the tests import `_PACKER` and `_HiredisPacking`, whose class name they
# check, from here).
__all__ = ["connect", "connect_sync"]


def _tls_kwargs(parsed: RedisURL) -> dict[str, Any]:
    if not parsed.tls:
        return {}
    kwargs: dict[str, Any] = {"ssl": True}
    for name in ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in parsed.options:
            kwargs[name] = parsed.options[name]
    return kwargs


@dataclass(frozen=True)
class _Flavour:
    """The client classes of one redis-py API (asyncio or blocking)."""

    plain: Any
    cluster: Any
    node: Any
    sentinel: Any
    pool: Any


_ASYNC = _Flavour(
    redis.asyncio.Redis,
    redis.asyncio.RedisCluster,
    redis.asyncio.cluster.ClusterNode,
    redis.asyncio.sentinel.Sentinel,
    AsyncBlockingPool,
)
_SYNC = _Flavour(
    redis.Redis,
    redis.cluster.RedisCluster,
    redis.cluster.ClusterNode,
    redis.sentinel.Sentinel,
    BlockingPool,
)


def _blocking_pool(url: str, flavour: _Flavour, options: dict[str, Any]) -> Any:
    """A single server's pool: a command waits for a free connection (`redline.connection.pool`)."""
    return flavour.pool.from_url(
        url,
        max_connections=options.pop("max_connections", MAX_CONNECTIONS),
        timeout=options.pop("pool_timeout", POOL_TIMEOUT),
        **options,
    )


def _client(url: str, flavour: _Flavour, options: dict[str, Any]) -> Any:
    parsed = parse_url(url)
    if parsed.mode != "standalone":  # cluster and Sentinel pools keep redis-py's (docs)
        options.pop("pool_timeout", None)
    # Blocking connections take a packer; the cluster client refuses the option (its nodes
    # keep redis-py's). The asyncio ones are given a connection class below.
    if flavour is _SYNC and parsed.mode != "cluster" and redis.utils.HIREDIS_AVAILABLE:
        options = {"command_packer": _PACKER, **options}
    auth: dict[str, Any] = {"username": parsed.username, "password": parsed.password}
    if parsed.mode == "cluster":
        nodes = [flavour.node(host, port) for host, port in parsed.nodes]
        client = flavour.cluster(startup_nodes=nodes, **auth, **_tls_kwargs(parsed), **options)
    elif parsed.mode == "sentinel":
        sentinel = flavour.sentinel(
            list(parsed.nodes),
            sentinel_kwargs={**auth, **_tls_kwargs(parsed)},  # rediss: the sentinels too
            db=parsed.db,
            **auth,
            **_tls_kwargs(parsed),
            **options,
        )
        kind = _SentinelClient if flavour is _ASYNC else _SyncSentinelClient
        client = sentinel.master_for(parsed.service, redis_class=kind)
    else:
        client = flavour.plain.from_pool(_blocking_pool(url, flavour, options))
    if flavour is _ASYNC and redis.utils.HIREDIS_AVAILABLE:
        pack_with_hiredis(client)
    return client


class _SentinelClient(redis.asyncio.Redis):
    """The asyncio client of a Sentinel-managed primary; closing it also closes its links to the
    sentinels (redis-py's `Sentinel` keeps them open, and has no close of its own)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in sentinels_of(self.connection_pool):
            await sentinel.aclose()


class _SyncSentinelClient(redis.Redis):
    """The blocking counterpart of `_SentinelClient`: closing it closes the sentinels' links."""

    def close(self) -> None:
        super().close()
        for sentinel in sentinels_of(self.connection_pool):
            sentinel.close()


def connect(url: str, **options: Any) -> AsyncClient:
    """An asyncio client for `url`. Extra keyword arguments go to redis-py (timeouts, …).

    `max_connections` (default 100) bounds the connections the client opens. On a single
    server a command finding them all busy waits up to `pool_timeout` seconds (default 20)
    for one to come free, then raises `redline.connection.pool.PoolTimeoutError`; so an
    ``asyncio.gather`` of thousands of calls on one client succeeds. A cluster client's limit
    is per node, and a cluster's or Sentinel's pool refuses the command at once
    (redis-py's ``MaxConnectionsError``): raise `max_connections` there (README,
    "Connections")."""
    return cast(AsyncClient, _client(url, _ASYNC, dict(options)))


def connect_sync(url: str, **options: Any) -> SyncClient:
    """A blocking client for `url` (for scripts, the CLI and the sync queue API); its pool
    as `connect`'s."""
    return cast(SyncClient, _client(url, _SYNC, dict(options)))
