"""`redline queue …` as an operator types it, against a real server: in this process
(`invoke`), and the first push of all as a real `redline` process (`run`)."""

from __future__ import annotations

import re

from redline.connection import connect_sync
from redline.queue import SyncReliableQueue
from tests.helpers import invoke, run


def test_push_info_pop_ack(redis_url: str) -> None:
    pushed = run("queue", "push", "jobs", "a", "b", "--redis", redis_url)
    assert pushed.returncode == 0 and pushed.stdout.split() == ["1", "2"]
    info = invoke("queue", "info", "jobs", "--redis", redis_url)
    assert "jobs" in info.stdout and " 2 " in info.stdout
    waiting = invoke("queue", "inspect", "jobs", "--redis", redis_url)
    assert "waiting" in waiting.stdout and "b" in waiting.stdout
    popped = invoke("queue", "pop", "jobs", "--count", "2", "--redis", redis_url)
    assert "1:1" in popped.stdout and "2:1" in popped.stdout
    pending = invoke("queue", "inspect", "jobs", "--pending", "--redis", redis_url)
    assert "inflight" in pending.stdout
    acked = invoke("queue", "ack", "jobs", "1:1", "2", "--redis", redis_url)
    assert acked.returncode == 0 and "acknowledged 2 of 2" in acked.stdout
    stale = invoke("queue", "ack", "jobs", "1:1", "--redis", redis_url)
    assert stale.returncode == 1 and "acknowledged 0 of 1" in stale.stdout


def test_dead_letters_requeue_delete_recover_purge(redis_url: str) -> None:
    queue = SyncReliableQueue(connect_sync(redis_url), max_deliveries=1)
    queue.push("jobs", b"x", b"y", b"\xff")
    for delivery in queue.pop("jobs", count=2):
        queue.dead_letter(delivery, "broken")
    dead = invoke("queue", "dead", "jobs", "--redis", redis_url)
    assert dead.stdout.count("broken") == 2
    assert "IDS or --all" in invoke("queue", "requeue", "jobs", "--redis", redis_url).stderr
    assert (
        invoke("queue", "requeue", "jobs", "1", "--redis", redis_url).stdout == "requeued 1 of 1\n"
    )
    assert invoke("queue", "delete", "jobs", "--all", "--redis", redis_url).stdout == "deleted 1\n"
    queue.pop("jobs", count=1)  # "1" again, in flight
    recovered = invoke("queue", "recover", "jobs", "--elapsed", "0", "--redis", redis_url)
    assert recovered.stdout == "recovered 1\n"
    purged = invoke("queue", "purge", "jobs", "--yes", "--redis", redis_url)
    assert purged.stdout == "purged 2\n"  # "1" (delayed) and the waiting b"\xff"


def test_errors_are_clear(redis_url: str) -> None:
    down = invoke("queue", "info", "jobs", "--redis", "redis://127.0.0.1:1/0")
    assert down.returncode != 0 and "error:" in down.stderr
    assert "Traceback" not in down.stderr
    bad = invoke("queue", "ack", "jobs", "1:x", "--redis", redis_url)
    assert bad.returncode == 2 and "ID:TOKEN" in bad.stderr
    helped = invoke("queue", "--help")
    for command in ("info", "inspect", "push", "pop", "ack", "recover", "requeue", "purge"):
        assert command in helped.stdout


def test_retention_is_set_and_info_shows_the_drops(redis_url: str) -> None:
    kept = invoke(
        "queue", "retention", "jobs", "--entries", "1", "--days", "2", "--redis", redis_url
    )
    assert kept.returncode == 0
    assert "keeps the newest 1 dead letters, none older than 2 days" in kept.stdout
    queue = SyncReliableQueue(connect_sync(redis_url))
    queue.push("jobs", b"x", b"y")
    for delivery in queue.pop("jobs", count=2):
        queue.dead_letter(delivery, reason="bad")
    info = invoke("queue", "info", "jobs", "--redis", redis_url, env={"COLUMNS": "200"})
    rows = [
        re.split("[│┃]", line)[1:-1]
        for line in info.stdout.splitlines()
        if "┃" in line or "│" in line
    ]
    header, row = [c.strip() for c in rows[0]], [c.strip() for c in rows[-1]]
    assert dict(zip(header, row, strict=True)) == {
        "queue": "jobs",
        "waiting": "0",
        "inflight": "0",
        "delayed": "0",
        "dead": "1",
        "expired": "0",
        "dropped": "1",
        "records dropped": "0",
        "dead kept": "1, 2 days",
    }
    bad = invoke("queue", "retention", "jobs", "--entries", "0", "--redis", redis_url)
    assert bad.returncode == 2 and "--entries" in bad.stderr


def test_info_reads_whole_at_80_columns(redis_url: str) -> None:
    """Too narrow for a row per queue, `info` turns the table: a column per queue, every
    heading whole (a row per queue cut them: "waiti…")."""
    queue = SyncReliableQueue(connect_sync(redis_url))
    queue.push("jobs", b"a", b"b")
    queue.push("orders:priority", b"c")
    info = invoke(
        "queue", "info", "jobs", "orders:priority", "--redis", redis_url, env={"COLUMNS": "80"}
    )
    lines = info.stdout.splitlines()
    assert "…" not in info.stdout and max(len(line) for line in lines) <= 80, info.stdout
    cells = [[c.strip() for c in re.split("[│┃]", line)[1:-1]] for line in lines]
    rows = {row[0]: row[1:] for row in cells if row}
    assert rows[""] == ["jobs", "orders:priority"]
    assert rows["waiting"] == ["2", "1"] and rows["records dropped"] == ["0", "0"]
    assert rows["dead kept"] == ["10000, 180 days"] * 2
    wide = invoke("queue", "info", "jobs", "--redis", redis_url, env={"COLUMNS": "120"})
    assert "┃ queue " in wide.stdout  # wide enough: a row per queue, as before


def test_holders_names_who_holds_and_releases_what_gone_instances_held(redis_url: str) -> None:
    client = connect_sync(redis_url)
    client.hset("redline:registry", "demo:svc", '{"service": "handler"}')
    client.hset("demo:svc:7", "pid", 1)  # instance 7 is alive; instance 8's hash is gone
    SyncReliableQueue(client).push("jobs", b"a", b"b", b"c", b"d")
    SyncReliableQueue(client, consumer="demo:svc:7").pop("jobs", count=1)
    SyncReliableQueue(client, consumer="demo:svc:8").pop("jobs", count=2)
    SyncReliableQueue(client, consumer="host:1:abc").pop("jobs", count=1)  # never judged
    shown = invoke("queue", "holders", "jobs", "--redis", redis_url).stdout
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in shown.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row and ":" in row[0]}
    assert rows == {
        "demo:svc:7": ["1", "1", ""],
        "demo:svc:8": ["1", "2", "gone"],
        "host:1:abc": ["1", "1", ""],
    }
    released = invoke("queue", "holders", "jobs", "--release-gone", "--redis", redis_url)
    assert "released 2 held by 1 gone instance(s)" in released.stdout
    info = SyncReliableQueue(client).info("jobs")
    assert (info.inflight, info.delayed) == (2, 2)


def test_empty_answers_say_so_in_one_line(redis_url: str) -> None:
    said = {
        ("queue", "inspect", "none"): "none: no waiting messages\n",
        ("queue", "inspect", "none", "--pending", "--start", "5"): (
            "none: no in-flight messages from #5\n"
        ),
        ("queue", "dead", "none"): "none: no dead letters\n",
        ("queue", "pop", "none", "other"): "nothing to take: no message waiting on none other\n",
        ("services",): "no live instances: a service registers when it starts\n",
        ("queue", "holders", "none"): "none: nothing in flight, so no holder\n",
    }  # fmt: skip
    for command, line in said.items():
        done = invoke(*command, "--redis", redis_url)
        assert done.returncode == 0 and done.stdout == line, (command, done.stdout, done.stderr)
    status = invoke("status", "--redis", redis_url)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [
        "services: none registered or desired",
        "cscale agents: none",
        "recent events: none",
    ]
