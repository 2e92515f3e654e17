"""job_events.lua and job_cancel.lua on their own, against a real server."""

from __future__ import annotations

import redis

from redline.jobs import events as ev
from redline.jobs import job_keys
from redline.jobs.priority import levels_key, priority_key, scheduled_key
from redline.scripting.scripts import run_sync

Q = "s:jobs"


def events(client: redis.Redis, *rows: tuple[str, str, str, int]) -> list[bytes]:
    """Append (job, event, state, ttl) rows (attempt 1, task "t", no progress or message) as
    a worker's flush does, the stream capped at about 100 entries; the entries' ids."""
    group = [ev.Pending(Q, job, event, state, 1, "t", ttl=ttl) for job, event, state, ttl in rows]
    ids: list[bytes] = run_sync(client, "job_events", *ev._call(Q, group, cap=100))
    return ids


def stream(client: redis.Redis) -> list[tuple[str, str]]:
    """(job, event) of every event in the stream, in order (entries unpacked)."""
    entries = client.xrange(job_keys(Q).events)
    return [(e.job, e.event) for i, f in entries for e in ev.JobEvent.in_entry(Q, i, f)]


def test_events_append_in_order_and_keep_the_status(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    ids = events(sredis, ("a", "enqueued", "waiting", 60), ("a", "started", "running", 60))
    assert [e[0] for e in sredis.xrange(keys.events)] == ids and len(ids) == 1  # one entry
    assert stream(sredis) == [("a", "enqueued"), ("a", "started")]
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
    assert stream(sredis) == [
        ("a", "started"),
        ("a", "completed"),
        ("b", "started"),
        ("b", "dead"),
        ("c", "started"),
        ("c", "completed"),
    ]
    assert sredis.xlen(keys.events) == 3  # an entry per call


def test_an_enqueued_event_never_overwrites_a_workers_state(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    events(sredis, ("a", "started", "running", 60), ("a", "enqueued", "waiting", 60))
    assert sredis.hget(keys.status("a"), "state") == b"running"


def test_the_stream_is_capped(sredis: redis.Redis) -> None:
    for n in range(300):
        events(sredis, *((f"j{n}-{i}", "enqueued", "waiting", 60) for i in range(2)))
    assert 100 <= sredis.xlen(job_keys(Q).events) < 300  # MAXLEN ~ 100: trimmed by whole nodes


def test_a_batch_goes_in_entries_of_up_to_pack_events(sredis: redis.Redis) -> None:
    rows = [(f"j{i}", "started", "running", 60) for i in range(ev.PACK * 2 + 1)]
    events(sredis, *rows)
    entries = sredis.xrange(job_keys(Q).events)
    sizes = [len(ev.JobEvent.in_entry(Q, i, f)) for i, f in entries]
    assert sizes == [ev.PACK, ev.PACK, 1]
    assert stream(sredis) == [(job, "started") for job, *_ in rows]
    assert entries[2][1][b"job"] == rows[-1][0].encode()  # one event: its own fields
    times = {sredis.hget(job_keys(Q).status(job), "started_at") for job, *_ in rows}
    assert times == {entries[0][0].split(b"-")[0]}  # the batch's one time, the first entry's


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


def enqueue_one(
    client: redis.Redis, job: str, *, due: str = "", priority: int = 0, lock: str | None = None
) -> bytes:
    """job_enqueue.lua with document ``doc-<job>``: its list (or scheduled set), its event."""
    keys = job_keys(Q)
    target = scheduled_key(Q, priority) if due else priority_key(Q, priority)
    called = [target, keys.events, keys.status(job)]
    called += [levels_key(Q)] if priority else []
    called += [keys.unique(lock)] if lock else []
    reply: bytes = run_sync(
        client, "job_enqueue", called, [f"doc-{job}", priority, due, 30, 100, job, "t", 60]
    )
    return reply


def test_enqueue_pushes_and_records_its_event_in_one_call(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    assert enqueue_one(sredis, "a") == b""
    assert sredis.lrange(Q, 0, -1) == [b"doc-a"]
    [(entry_id, fields)] = sredis.xrange(keys.events)
    assert fields == {b"job": b"a", b"event": b"enqueued", b"attempt": b"0", b"task": b"t"}
    # an enqueue writes two fields (job_status reads the rest as "only enqueued"); its time
    # is the event's stream id (no TIME call of its own)
    ms = entry_id.split(b"-")[0]
    status = sredis.hgetall(keys.status("a"))
    assert status == {b"state": b"waiting", b"enqueued_at": ms}
    assert 0 < sredis.ttl(keys.status("a")) <= 60


def test_enqueue_schedules_with_a_due_time_and_notes_a_priority(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    assert enqueue_one(sredis, "s", due="1767225600.5") == b""
    assert sredis.zscore(keys.scheduled, "doc-s") == 1767225600.5 and not sredis.exists(Q)
    assert sredis.hget(keys.status("s"), "state") == b"scheduled"
    assert enqueue_one(sredis, "p", priority=3) == b""
    assert sredis.lrange(priority_key(Q, 3), 0, -1) == [b"doc-p"]
    assert sredis.smembers(levels_key(Q)) == {b"3"}


def test_a_unique_enqueue_whose_key_is_held_changes_nothing(sredis: redis.Redis) -> None:
    keys = job_keys(Q)
    assert enqueue_one(sredis, "u1", lock="k") == b""
    assert sredis.get(keys.unique("k")) == b"u1" and 0 < sredis.ttl(keys.unique("k")) <= 30
    assert enqueue_one(sredis, "u2", lock="k") == b"u1"  # held: the holder's id
    assert sredis.lrange(Q, 0, -1) == [b"doc-u1"]
    assert sredis.xlen(keys.events) == 1 and not sredis.exists(keys.status("u2"))
    # with a priority, the lock key follows the set of priorities used
    assert enqueue_one(sredis, "p1", priority=2, lock="kp") == b""
    assert enqueue_one(sredis, "p2", priority=2, lock="kp") == b"p1"
    assert sredis.lrange(priority_key(Q, 2), 0, -1) == [b"doc-p1"]
    assert sredis.smembers(levels_key(Q)) == {b"2"} and sredis.get(keys.unique("kp")) == b"p1"
