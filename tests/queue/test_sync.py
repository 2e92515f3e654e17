"""SyncReliableQueue: the blocking API, on the standalone server and the cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from redline.connection import SyncClient, connect_sync
from redline.queue import MessageState, SyncReliableQueue
from tests.helpers import wait_for


@pytest.fixture(params=["standalone", pytest.param("cluster", marks=pytest.mark.cluster)])
def sclient(request: pytest.FixtureRequest) -> Iterator[SyncClient]:
    if request.param == "cluster":
        url = request.getfixturevalue("cluster").url
    else:
        url = request.getfixturevalue("redis_url")
    client = connect_sync(url)
    yield client
    client.close()


@pytest.fixture
def squeue(sclient: SyncClient) -> SyncReliableQueue:
    return SyncReliableQueue(sclient, lease=30.0, max_deliveries=2)


def test_push_pop_ack_in_order(squeue: SyncReliableQueue, key: str) -> None:
    assert squeue.push(key, b"a", "b", b"") == ["1", "2", "3"]
    batch = squeue.pop(key, count=10)
    assert [(d.id, d.payload, d.deliveries) for d in batch] == [
        ("1", b"a", 1),
        ("2", b"b", 1),
        ("3", b"", 1),
    ]
    assert squeue.ack(*batch) == ["1", "2", "3"]
    assert squeue.info(key).inflight == 0


def test_retry_dead_letter_requeue_and_delete(squeue: SyncReliableQueue, key: str) -> None:
    squeue.push(key, b"x", b"y")
    x, y = squeue.pop(key, count=2)
    assert squeue.nack(x, delay=0) and squeue.dead_letter(y, "bad")
    (again,) = squeue.pop(key, count=2)
    assert (again.id, again.deliveries) == ("1", 2)
    assert squeue.nack(again, delay=0, reason="boom")  # past max_deliveries: dead
    assert sorted(m.reason for m in squeue.dead(key)) == [
        "bad",
        "max deliveries (2) reached: boom",
    ]
    assert squeue.requeue(key, "1") == 1
    assert squeue.delete(key, everything=True) == 1
    assert [m.state for m in squeue.inspect(key, delayed=True)] == [MessageState.DELAYED]


def test_blocking_pop_wakes_on_a_push_from_another_thread(
    squeue: SyncReliableQueue, key: str
) -> None:
    pusher = threading.Timer(0.2, squeue.push, args=(key, b"late"))
    pusher.start()
    got = squeue.pop(key, block=30)
    pusher.join()
    assert [d.payload for d in got] == [b"late"]


def test_stale_ack_is_refused_and_leases_are_kept(squeue: SyncReliableQueue, key: str) -> None:
    squeue.push(key, b"a")
    (first,) = squeue.pop(key)
    assert squeue.recover(key, elapsed=0) == 1
    (second,) = squeue.pop(key)
    assert squeue.ack(first) == []
    with squeue.keep_leases([second, first], every=0.05) as keeper:
        wait_for(lambda: keeper.lost, timeout=30)  # the stale one is lost at the first extension
    assert keeper.lost == [first] and keeper.held == [second]
    assert squeue.pop(key, count=1, ack=[second]) == []
    assert squeue.info(key).inflight == 0
