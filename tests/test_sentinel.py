"""redis+sentinel:// URLs: the client finds the primary, and follows it after a failover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.connection.client import (
    _PACKER,
    HeldConnection,
    SyncClient,
    _HiredisPacking,
    connect,
    connect_sync,
)
from tests.conftest import needs_tool
from tests.helpers import wait_for
from tests.servers import Sentinels, TlsSentinels, make_certs


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    made = Sentinels().start()
    yield made
    made.close()


def _write(client: SyncClient, value: str) -> bool:
    try:
        client.set("where", value)
        return True
    except (redis.ConnectionError, redis.ReadOnlyError, redis.TimeoutError):
        return False


def test_client_follows_the_primary_through_a_failover(sentinels: Sentinels) -> None:
    client = connect_sync(sentinels.url, socket_timeout=2)
    assert isinstance(client, redis.Redis)
    wait_for(lambda: _write(client, "before"), timeout=20)
    assert sentinels.replica.client().get("where") in (b"before", None)
    sentinels.primary.kill()
    wait_for(lambda: _write(client, "after"), timeout=40, interval=0.2)
    assert sentinels.replica.client().get("where") == b"after"  # the replica was promoted
    assert client.rpush("l", b"\xff", memoryview(b"mv")) == 2  # packed by hiredis:
    assert client.connection_pool.connection_kwargs["command_packer"] is _PACKER
    client.close()  # its links to the sentinels too (a ResourceWarning otherwise)


@needs_tool("redis-server", "redis-server")
@needs_tool("openssl", "openssl")
async def test_tls_sentinels_and_a_failover(tmp_path: Path) -> None:
    """rediss+sentinel: TLS to the sentinels as well as to the primary (every link of this
    deployment is TLS only); the client follows the primary through a failover."""
    make_certs(tmp_path)
    sentinels = TlsSentinels(tmp_path).start()
    try:
        client = connect(sentinels.url)
        sync = connect_sync(sentinels.url, socket_timeout=2)
        wait_for(lambda: _write(sync, "before"), timeout=20)
        assert await HeldConnection(client).run([("GET", "where")]) == [b"before"]
        assert await client.rpush("l", b"\xff", memoryview(b"mv")) == 2  # packed by hiredis:
        assert issubclass(client.connection_pool.connection_class, _HiredisPacking)
        await client.aclose()  # its links to the sentinels too (a ResourceWarning otherwise)
        sentinels.primary.kill()
        wait_for(lambda: _write(sync, "after"), timeout=40, interval=0.2)
        assert sentinels.replica.client().get("where") == b"after"  # the replica was promoted
        sync.close()
    finally:
        sentinels.close()
