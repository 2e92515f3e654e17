"""redis+sentinel:// URLs: the client finds the primary, and follows it after a failover."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from redline.connection import connect_sync
from tests.helpers import wait_for
from tests.servers import Sentinels


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    made = Sentinels().start()
    yield made
    made.close()


def _write(client: redis.Redis, value: str) -> bool:
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
