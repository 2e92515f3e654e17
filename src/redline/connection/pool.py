"""Connection pools that wait for a free connection rather than fail.

redis-py's default pool refuses a command once `max_connections` are in use at once
(``MaxConnectionsError: Too many connections`` for the 101st of an ``asyncio.gather``). The
pools `redline.connection.connect` gives a single server's client are redis-py's blocking pools:
a command waits up to `pool_timeout` seconds for a connection to come free, and only then
fails, with a `PoolTimeoutError` that says what to change.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from redline.errors import RedlineError

__all__ = [
    "MAX_CONNECTIONS",
    "POOL_TIMEOUT",
    "AsyncBlockingPool",
    "BlockingPool",
    "PoolTimeoutError",
]

MAX_CONNECTIONS = 100  # connections one client opens at most (redis-py's default)
POOL_TIMEOUT = 20.0  # seconds a command waits for a free connection (redis-py's default)


class PoolTimeoutError(RedlineError, redis.exceptions.ConnectionError):
    """Every connection of a client's pool stayed busy for `pool_timeout` seconds (a
    ConnectionError, as redis-py's own: code that retries those retries this)."""

    def __init__(self, max_connections: int, timeout: float | None) -> None:
        super().__init__(
            f"all {max_connections} connections of the client's pool stayed busy for"
            f" {timeout}s: run fewer commands at once, or give connect() a larger"
            " max_connections=N (or pool_timeout=seconds)"
        )


def _is_timeout(exc: redis.exceptions.ConnectionError) -> bool:
    return str(exc) == "No connection available."


class AsyncBlockingPool(redis.asyncio.BlockingConnectionPool):
    """redis-py's asyncio blocking pool, its timeout error made `PoolTimeoutError`."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.exceptions.ConnectionError as exc:
            if not _is_timeout(exc):
                raise
            raise PoolTimeoutError(self.max_connections, self.timeout) from exc


class BlockingPool(redis.BlockingConnectionPool):
    """The blocking twin of `AsyncBlockingPool`."""

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.exceptions.ConnectionError as exc:
            if not _is_timeout(exc):
                raise
            raise PoolTimeoutError(self.max_connections, self.timeout) from exc
