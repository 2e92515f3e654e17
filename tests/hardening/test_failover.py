"""Primary SIGKILLed under Sentinel while producers push through a redis+sentinel:// URL.

Clients follow the new primary by themselves. What a failover loses is MEASURED here and
reported (``-s`` prints it; the junit report has it as properties): pushes acknowledged by the
old primary that had not reached the replica when it died. With ``wait_replicas=1`` (WAIT 1
after each push) an acknowledged push is on the replica, so none is lost; without it, the
replication lag at the moment of the crash is lost. docs/guarantees.md states both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redline.connection import connect, connect_sync
from redline.errors import ReplicationError
from redline.queue import ReliableQueue, SyncReliableQueue
from tests.hardening.support import actor, log_lines, recorded
from tests.helpers import stop, wait_for
from tests.servers import Sentinels, ServerProcess

KEY = "{hf}:q"


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    made = Sentinels()
    for node in (made.primary, made.replica):  # a replica syncs at once, not after 5 s
        node.config["repl-diskless-sync-delay"] = "0"
    made.start()
    wait_for(lambda: _in_sync(made.replica), timeout=20)
    yield made
    made.close()


def _in_sync(node: ServerProcess) -> bool:
    return node.client().info("replication").get("master_link_status") == "up"


def _replicated(node: ServerProcess) -> int:
    """How much of its primary's replication stream `node` has processed."""
    return int(node.client().info("replication").get("slave_repl_offset", -1))


def _promoted(sentinels: Sentinels) -> bool:
    return sentinels.replica.client().info("replication")["role"] == "master"


def _failed_over(sentinels: Sentinels) -> bool:
    """Whether every sentinel names the replica as the primary: the failover is over for all
    of them (the replica answering as a master is its first step only)."""
    replica = (b"127.0.0.1", sentinels.replica.port)
    named = (
        s.client().sentinel_get_master_addr_by_name(sentinels.SERVICE, return_responses=True)
        for s in sentinels.sentinels
    )
    return all(address == replica for address in named)


def _grew(path: Path, by: int) -> Callable[[], bool]:
    seen = recorded(path).total()
    return lambda: recorded(path).total() >= seen + by


@pytest.mark.parametrize("replicas", [0, 1], ids=["no-wait", "wait-1"])
def test_failover_loses_only_unreplicated_pushes(
    sentinels: Sentinels,
    tmp_path: Path,
    replicas: int,
    record_property: Callable[[str, object], None],
) -> None:
    acked_file = tmp_path / "acked.txt"
    producer = actor(
        "produce", sentinels.url, KEY, str(acked_file), "f", str(replicas), log=tmp_path / "p.log"
    )
    try:
        wait_for(_grew(acked_file, 300), timeout=60)
        # Everything acknowledged so far is in the primary's replication stream up to `offset`;
        # once the replica has that much, no failover can lose it.
        synced = recorded(acked_file).total()
        offset = sentinels.primary.client().info("replication")["master_repl_offset"]
        wait_for(lambda: _replicated(sentinels.replica) >= offset, timeout=20)
        sentinels.primary.kill()
        wait_for(lambda: _promoted(sentinels), timeout=40, interval=0.2)
        if replicas:
            # The old primary comes back, as a replica of the new one, so that
            # WAIT 1 can be satisfied again. Without WAIT, a restarted old primary is a master
            # until Sentinel demotes it, and a sentinel that has not yet seen the failover may
            # still name it: pushes acknowledged there in that window are lost at the demotion
            # (Sentinel's split brain, seen under load), which is not what this test measures.
            # It comes back empty: a sentinel still in the failover (or not yet told of it) sees
            # a sane primary again and a replica turned master, and makes the new primary its
            # replica — a full sync that empties it, every acknowledged push lost. So it comes
            # back only once every sentinel names the new primary, and as its replica, never
            # to be promoted: under load the new primary can miss down-after-milliseconds (1 s),
            # and a second failover onto the empty node would lose every push acknowledged
            # before it (as 0..379 of 740 were, once, under load). Started as a master it is a
            # candidate until Sentinel converts it (INFO shows a master no replica-priority).
            wait_for(lambda: _failed_over(sentinels), timeout=60, interval=0.2)
            sentinels.primary.config["replicaof"] = f"127.0.0.1 {sentinels.replica.port}"
            sentinels.primary.config["replica-priority"] = "0"
            sentinels.primary.start()
        wait_for(_grew(acked_file, 300), timeout=60, interval=0.2)
    finally:
        stop(producer)
    assert _promoted(sentinels)  # one failover: the replica is the primary still
    acked = recorded(acked_file)
    present = {int(p.split(b"-")[1]) for p in sentinels.replica.client().lrange(KEY, 0, -1)}
    lost = sorted({int(p.split("-")[1]) for p in acked} - present)
    print(f"wait_replicas={replicas} acknowledged={len(acked)} lost={len(lost)} {lost[:5]}")
    record_property("acknowledged", len(acked))
    record_property("lost", len(lost))
    if replicas:
        assert lost == []
    if lost:  # only a run of the last pushes the old primary acknowledged, after all that the
        # replica was known to have (a replica holds a prefix of its primary's stream)
        assert lost == list(range(lost[0], lost[-1] + 1)) and lost[0] >= synced, (synced, lost)
    assert len(acked) >= 600 and max(present) > max(lost, default=-1)  # went on after it
    # the kill interrupted the producer: pushes failed, were retried, and it recovered
    assert log_lines(tmp_path / "p.log", "push recovered after attempts=")


async def test_wait_replicas_without_enough_replicas_says_so(redis_url: str) -> None:
    client = connect(redis_url)
    queue = ReliableQueue(client)
    with pytest.raises(ReplicationError) as caught:
        await queue.push("{hf}:alone", b"a", b"b", wait_replicas=1, wait_timeout=0.1)
    assert len(caught.value.ids) == 2 and caught.value.acked == 0
    assert "0 of 1 replicas" in str(caught.value) and "Retry" in str(caught.value)
    assert await client.llen("{hf}:alone") == 2  # on the primary, not known to be replicated
    await client.aclose()


def test_sync_queue_waits_for_replicas_too(redis_url: str) -> None:
    queue = SyncReliableQueue(connect_sync(redis_url))
    with pytest.raises(ReplicationError) as caught:
        queue.push("{hf}:sync", b"a", wait_replicas=1, wait_timeout=0.1)
    assert len(caught.value.ids) == 1
    assert queue.push("{hf}:sync", b"b") and len(queue.pop("{hf}:sync", count=5)) == 2
