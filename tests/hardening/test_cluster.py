"""A queue and mpush on a 3-master cluster with one replica each, through a slot migration
(CLUSTER SETSLOT … MIGRATING/IMPORTING + MIGRATE, key by key under load) and a master
failover: services follow MOVED/ASK/TRYAGAIN and the new topology by themselves.

Counting: every push a producer was told was stored is consumed from ``a`` and is on ``b``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from redline.connection import connect_sync
from redline.keys import hash_slot
from tests.hardening.support import actor, recorded
from tests.helpers import spawn, stop, wait_for
from tests.servers import Cluster, ServerProcess

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def replicated() -> Iterator[Cluster]:
    made = Cluster(masters=3, replicas=1).start()
    yield made
    made.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def owner(cluster: Cluster, slot: int) -> ServerProcess:
    """The master node serving `slot`, as the live nodes see it."""
    for node in cluster.nodes:
        if node.proc is None:
            continue
        for start, end, master, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in cluster.nodes if n.port == int(master[1]))
    raise AssertionError(f"no node serves slot {slot}")


def _id(node: ServerProcess) -> str:
    return _text(node.client().execute_command("CLUSTER", "MYID"))


def migrate(cluster: Cluster, slot: int, source: ServerProcess, target: ServerProcess) -> int:
    """Move `slot` from `source` to `target` the way redis-cli --cluster reshard does."""
    src, dst = source.client(), target.client()
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _id(source))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _id(target))
    moved = 0
    while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1):
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        moved += 1
        time.sleep(0.1)  # pacing, not synchronisation: traffic runs between two keys
    for node in cluster.nodes[: cluster.masters]:
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", _id(target))
    return moved


@contextmanager
def pipeline(cluster: Cluster, tag: str, where: Path) -> Iterator[Callable[[], Counter[str]]]:
    """A producer → {tag}:in → mpush → {tag}:a (consumed) and {tag}:b, flowing end to end;
    yields the producer's acknowledged pushes."""
    url, logs = cluster.url, where / "logs"
    logs.mkdir()
    outs = json.dumps([f"{{{tag}}}:a", f"{{{tag}}}:b"])
    sets = ["--set", f"in={{{tag}}}:in", "--set", f"out={outs}", "--set", "popTimeout=0.5"]
    mpush = spawn("mpush", "--redis", url, *sets, log=logs / "mpush.log")
    producer = actor("produce", url, f"{{{tag}}}:in", str(where / "p.txt"), tag, log=logs / "p.log")
    consumer = actor("consume", url, f"{{{tag}}}:a", str(where / "a.txt"), log=logs / "c.log")
    try:
        wait_for(lambda: recorded(where / "a.txt").total() >= 100, timeout=30)
        yield lambda: recorded(where / "p.txt")
    finally:
        stop(producer)
        acked = set(recorded(where / "p.txt"))
        try:
            wait_for(lambda: acked <= set(recorded(where / "a.txt")), timeout=40, interval=0.2)
        finally:
            stop(consumer)
            assert stop(mpush) == 0, (logs / "mpush.log").read_text()[-3000:]


def _grew(count: Callable[[], Counter[str]], by: int) -> Callable[[], bool]:
    seen = count().total()
    return lambda: count().total() >= seen + by


def _on_b(cluster: Cluster, tag: str) -> set[str]:
    live = ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes if n.proc is not None)
    client = connect_sync(f"redis+cluster://{live}")
    return {_text(p) for p in client.lrange(f"{{{tag}}}:b", 0, -1)}


def test_slot_migration_under_load(replicated: Cluster, tmp_path: Path) -> None:
    slot = hash_slot("{hm}")
    source = owner(replicated, slot)
    target = next(n for n in replicated.nodes[: replicated.masters] if n is not source)
    with pipeline(replicated, "hm", tmp_path) as acked:
        wait_for(_grew(acked, 200), timeout=30)
        moved = migrate(replicated, slot, source, target)
        wait_for(_grew(acked, 200), timeout=30)
    assert moved >= 1  # the rest were created on the target meanwhile (ASK)
    assert owner(replicated, slot) is target
    consumed, done = set(recorded(tmp_path / "a.txt")), set(acked())
    assert done <= consumed and done <= _on_b(replicated, "hm")
    print(f"acknowledged={len(done)} keys_moved={moved}")


def test_master_failover_under_load(
    replicated: Cluster, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    slot = hash_slot("{hf}")
    master = owner(replicated, slot)
    with pipeline(replicated, "hf", tmp_path) as acked:
        wait_for(_grew(acked, 200), timeout=30)
        master.kill()
        wait_for(lambda: owner(replicated, slot) is not master, timeout=40, interval=0.2)
        wait_for(_grew(acked, 200), timeout=40, interval=0.2)
    done = set(acked())
    lost = done - _on_b(replicated, "hf")
    # Cluster replication is asynchronous (and wait_replicas is for standalone/Sentinel):
    # what the old master acknowledged but had not yet sent to its replica may be lost. It is
    # measured and reported, like the Sentinel test's; everything else must come through.
    print(f"acknowledged={len(done)} lost_in_failover={len(lost)}")
    record_property("lost", len(lost))
    assert done - lost <= set(recorded(tmp_path / "a.txt"))
    assert len(lost) < len(done) / 10
