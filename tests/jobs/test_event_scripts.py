"""job_events.lua and job_cancel.lua on their own, against a real server."""

from __future__ import annotations

import redis

from redline.jobs import job_keys
from redline.scripting.scripts import run_sync

Q = "s:jobs"


def events(client: redis.Redis, *rows: tuple[str, str, str, int]) -> list[bytes]:
    """Append (job, event, state, ttl) rows; attempt 1, task "t", no progress or message."""
    keys = job_keys(Q)
    args: list[str | int] = [100]
    for job, event, state, ttl in rows:
        args += [job, event, state, 1, "t", "", "", ttl]
    ids: list[bytes] = run_sync(
        client, "job_events", [keys.events, *(keys.status(r[0]) for r in rows)], args
    )
    return ids


def test_events_append_in_order_and_keep_the_status(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    ids = events(sredis, ("a", "enqueued", "waiting", 60), ("a", "started", "running", 60))
    assert [e[0] for e in sredis.xrange(keys.events)] == ids
    status = sredis.hgetall(keys.status("a"))
    assert status[b"state"] == b"running" and status[b"last_event"] == b"started"
    assert int(status[b"enqueued_at"]) <= int(status[b"started_at"])
    assert 0 < sredis.ttl(keys.status("a")) <= 60
    events(sredis, ("a", "progress", "", 60))  # no state: the state stays
    assert sredis.hget(keys.status("a"), "state") == b"running"


def test_a_finished_jobs_status_is_deleted_or_kept(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    events(sredis, ("a", "started", "running", 60), ("a", "completed", "complete", 0))
    assert not sredis.exists(keys.status("a"))
    events(sredis, ("b", "started", "running", 60), ("b", "dead", "dead", 600))
    assert sredis.hget(keys.status("b"), "state") == b"dead"
    assert sredis.hget(keys.status("b"), "finished_at") is not None
    events(sredis, ("c", "started", "running", 60), ("c", "completed", "complete", -1))
    assert sredis.hget(keys.status("c"), "state") == b"running"  # -1: left alone
    assert sredis.xlen(keys.events) == 6


def test_an_enqueued_event_never_overwrites_a_workers_state(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    events(sredis, ("a", "started", "running", 60), ("a", "enqueued", "waiting", 60))
    assert sredis.hget(keys.status("a"), "state") == b"running"


def test_the_stream_is_capped(sredis: redis.Redis) -> None:
    for n in range(30):
        events(sredis, *((f"j{n}-{i}", "enqueued", "waiting", 60) for i in range(20)))
    assert 100 <= sredis.xlen(job_keys(Q).events) < 600  # MAXLEN ~ 100: trimmed by whole nodes


def cancel(client: redis.Redis, job: str, most: int = 10, keep_ms: int = 60_000) -> int:
    keys = job_keys(Q)
    return int(
        run_sync(client, "job_cancel", [keys.cancelled, keys.status(job)], [job, most, keep_ms])
    )


def test_cancel_marks_unfinished_jobs_only_and_trims(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    events(sredis, ("a", "enqueued", "waiting", 60), ("b", "completed", "complete", 600))
    assert cancel(sredis, "a") == 1 and cancel(sredis, "unknown") == 1
    assert sredis.hget(keys.status("a"), "cancel_requested_at") is not None
    assert not sredis.exists(keys.status("unknown"))  # no status made up for an unknown id
    assert cancel(sredis, "b") == 0  # finished: nothing to cancel
    assert sredis.zscore(keys.cancelled, "b") is None
    for n in range(20):
        cancel(sredis, f"x{n}", most=10)
    assert sredis.zcard(keys.cancelled) == 10
    sredis.zadd(keys.cancelled, {"old": 1})
    cancel(sredis, "y", most=10, keep_ms=60_000)
    assert sredis.zscore(keys.cancelled, "old") is None
