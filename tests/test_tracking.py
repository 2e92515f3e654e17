from __future__ import annotations

import asyncio

from redline.connection import AsyncClient
from redline.runtime.metrics import Metrics, metrics_key
from redline.runtime.tracking import Tracker, message_ids_key, message_key, xid, xid_key

NS = "demo:t"


def tracker(**fields: object) -> Tracker:
    base: dict[str, object] = {"done": "demo:done", "expire": 60, "timeout": 10, "capacity": 100}
    return Tracker(NS, "mpush", Metrics(NS, timeout_ms=10_000), **{**base, **fields})  # type: ignore[arg-type]


async def test_track_writes_the_seeds_keys(aredis: AsyncClient) -> None:
    ids = await tracker().track(aredis, [b"a", b"b"])
    assert ids == [1, 2]
    assert await aredis.lrange(message_ids_key(NS), 0, -1) == [b"2", b"1"]
    fields = await aredis.hgetall(message_key(NS, 1))
    assert set(fields) == {b"timestamp", b"deadline", b"service", b"xid"}
    assert int(fields[b"deadline"]) - int(fields[b"timestamp"]) == 10_000
    assert 0 < await aredis.ttl(message_key(NS, 1)) <= 60
    assert await aredis.get(xid_key(NS, xid(b"b"))) == b"2"


async def test_done_reports_by_id_or_payload_hash_become_metrics(aredis: AsyncClient) -> None:
    track = tracker()
    await track.track(aredis, [b"a", b"b", b"c"])
    await aredis.lpush("demo:done", "1", xid(b"b"), "999")  # 999: unknown, ignored
    assert await track.monitor_done(aredis, aredis) == 3
    await track.metrics.flush(aredis)
    done = await aredis.hgetall(metrics_key(NS, "done"))
    assert done[b"count"] == b"2" and done[b"histo10"] == b"2"
    assert await aredis.lrange(message_ids_key(NS), 0, -1) == [b"3"]
    assert not await aredis.exists(message_key(NS, 1), xid_key(NS, xid(b"b")))


async def test_timeouts_are_counted_once_and_expired_ids_removed(aredis: AsyncClient) -> None:
    track = tracker(timeout=0.05)
    await track.track(aredis, [b"a", b"b"])
    await aredis.delete(message_key(NS, 2))  # as if it had expired
    await asyncio.sleep(0.1)
    await track.monitor_ids(aredis)
    await track.monitor_ids(aredis)
    await track.metrics.flush(aredis)
    assert await aredis.hget(metrics_key(NS, "timeout"), "count") == b"1"
    assert await aredis.hget(metrics_key(NS, "expired"), "count") == b"1"
    assert await aredis.lrange(message_ids_key(NS), 0, -1) == [b"1"]


async def test_over_capacity_tracking_is_skipped_and_counted(aredis: AsyncClient) -> None:
    track = tracker(capacity=2)
    assert await track.track(aredis, [b"a", b"b"]) == [1, 2]
    assert await track.track(aredis, [b"c", b"d", b"e"]) == []
    await track.metrics.flush(aredis)
    assert await aredis.hget(metrics_key(NS, "capacity"), "count") == b"3"
