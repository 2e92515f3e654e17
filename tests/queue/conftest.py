"""Queue fixtures: every API test runs on the standalone server and on the 3-master cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from redline.connection import AsyncClient, connect
from redline.queue import ReliableQueue


@pytest.fixture(params=["standalone", pytest.param("cluster", marks=pytest.mark.cluster)])
async def qclient(request: pytest.FixtureRequest) -> AsyncIterator[AsyncClient]:
    """A client of a fresh standalone database, or of the cluster (keys isolated by `prefix`)."""
    if request.param == "cluster":
        url = request.getfixturevalue("cluster").url
    else:
        url = request.getfixturevalue("redis_url")
    client = connect(url)
    yield client
    await client.aclose()


@pytest.fixture
def queue(qclient: AsyncClient) -> ReliableQueue:
    return ReliableQueue(qclient, lease=30.0, max_deliveries=3)


@pytest.fixture
def key(prefix: str) -> str:
    """A queue name no other test uses."""
    return f"{prefix}:orders"
