"""Workflows drained by real `redline worker` processes SIGKILLed at random, each kill landing
on members in hand: a chord's callback is enqueued exactly once, with every result in member
order; a chain keeps its order and enqueues each link once. On one server and on the cluster."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redline.connection import SyncClient, connect_sync
from redline.jobs import MemberState, chain, chord, enqueue_sync, group
from redline.jobs.workflow import WorkflowKeys
from redline.queue import SyncReliableQueue
from tests.helpers import kill_holding, spawn_worker, stop, wait_for
from tests.jobs import workflow_tasks as w

MEMBERS = 2_000


@pytest.fixture(params=["server", pytest.param("cluster", marks=pytest.mark.cluster)])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own on the session server, or the cluster with the test's keys gone."""
    if request.param == "server":
        yield request.getfixturevalue("redis_url")
        return
    made = request.getfixturevalue("cluster").url
    client = connect_sync(made)
    for key in client.keys("w:*") + client.keys("*wf:chord*") + client.keys("*wf:cb*"):  # shared
        client.delete(key)
    client.close()
    yield made


def start_worker(
    url: str, log: Path, kill_at: str = "", queue: str = w.CHORD
) -> subprocess.Popen[str]:
    env = {"REDLINE_TEST_WF_KILL_AT": kill_at}
    return spawn_worker("tests.jobs.workflow_tasks", url, queue, log, concurrency=4, env=env)


def settled(client: SyncClient) -> bool:
    for queue in (w.CHORD, w.CALLBACK):
        info = SyncReliableQueue(client).info(queue)
        if (info.waiting, info.inflight, info.delayed, info.dead) != (0, 0, 0, 0):
            return False
    return True


def the_chord(url: str, members: int) -> Any:
    """A chord of `square` members whose callback runs on `CALLBACK`."""
    callback = w.summarize.s(url).options(queue=w.CALLBACK)
    return chord(group(w.square.s(url, n) for n in range(members)), callback)


def kill_busy(
    client: SyncClient, workers: list[subprocess.Popen[str]], kills: int, url: str, log: Path
) -> list[int]:
    """SIGKILL `kills` workers, each caught running members (frozen first: `kill_holding`),
    replacing each; returns how many runs each kill interrupted."""
    rng = random.Random(21)
    interrupted: list[int] = []

    def busy(p: subprocess.Popen[str]) -> int:
        return int(client.hget("w:busy", str(p.pid)) or 0)

    while len(interrupted) < kills:
        victim = rng.choice(wait_for(lambda: [p for p in workers if busy(p)], timeout=60))
        if kill_holding(victim, lambda v=victim: busy(v)):
            interrupted.append(busy(victim))
            workers.remove(victim)
            workers.append(start_worker(url, log))
            time.sleep(rng.uniform(0.1, 0.5))  # kills spread over the drain
    return interrupted


# Not marked slow (about 20 s): it counts rather than times, so it runs beside the others.
def test_a_chord_of_2000_through_10_kills_calls_back_once(url: str, tmp_path: Path) -> None:
    client = connect_sync(url)
    h = enqueue_sync(client, the_chord(url, MEMBERS))
    log = tmp_path / "workers.log"
    workers = [start_worker(url, log) for _ in range(3)]
    calls_back = start_worker(url, log, queue=w.CALLBACK)
    try:
        interrupted = kill_busy(client, workers, 10, url, log)
        assert h.result(timeout=180) == MEMBERS
        wait_for(lambda: settled(client), timeout=60)
    finally:
        for proc in [*workers, calls_back]:
            stop(proc)
    assert all(interrupted), interrupted  # every kill hit members that ran and were not acked
    assert json.loads(client.get("w:callback:got")) == [n * n for n in range(MEMBERS)]
    assert client.get("w:callback:runs") == b"1"  # one callback job, run once
    assert int(client.get("w:runs")) >= MEMBERS + sum(interrupted)  # the killed runs re-ran
    status = h.status()
    assert {m.state for m in status.members} == {MemberState.DONE}
    assert status.counts["done"] == MEMBERS + 1
    client.close()


# Not marked slow (about 15 s): it counts rather than times, so it runs beside the others.
def test_a_chain_of_50_through_kills_keeps_its_order(redis_url: str, tmp_path: Path) -> None:
    url = redis_url
    client = connect_sync(url)
    links: list[Any] = [w.step.s([], url, 0)] + [w.step.s(url, n) for n in range(1, 50)]
    h = enqueue_sync(client, chain(links))
    log = tmp_path / "workers.log"
    workers = [start_worker(url, log) for _ in range(2)]
    try:
        interrupted = kill_busy(client, workers, 5, url, log)
        assert h.result(timeout=180) == list(range(50))
        wait_for(lambda: settled(client), timeout=60)
    finally:
        for proc in workers:
            stop(proc)
    assert all(interrupted), interrupted
    firsts = {int(k): int(v) for k, v in client.hgetall("w:first").items()}
    assert firsts == dict.fromkeys(range(50), 1)  # each link was pushed exactly once
    client.close()


@pytest.mark.parametrize("kill_at", ["ack", "confirm"])
def test_a_worker_killed_between_a_completion_and_its_ack(
    url: str, tmp_path: Path, kill_at: str
) -> None:
    """The window itself, hit every time: the worker dies right after settling members (at
    its ack), or right after pushing the callback (before confirming it). The members run
    again; their repeated completions are ignored; the callback is pushed once."""
    client = connect_sync(url)
    h = enqueue_sync(client, the_chord(url, 3))
    log = tmp_path / "workers.log"
    dying = start_worker(url, log, kill_at)
    assert dying.wait(60) == -signal.SIGKILL, log.read_text()
    keys = WorkflowKeys(h.id)
    assert int(client.hget(keys.meta, "done") or 0) >= 1  # completions recorded, none acked
    if kill_at == "confirm":  # the callback is on the queue, its push not yet confirmed
        assert client.hget(keys.state, "callback") == b"waiting"
        assert client.sismember(f"{{{w.CALLBACK}}}:job-wf:{h.id}", f"{h.id}.callback")
        assert client.llen(w.CALLBACK) == 1
    survivors = [start_worker(url, log), start_worker(url, log, queue=w.CALLBACK)]
    try:
        assert h.result(timeout=60) == 3
        wait_for(lambda: settled(client), timeout=60)
    finally:
        for proc in survivors:
            stop(proc)
    assert client.get("w:callback:runs") == b"1"
    assert json.loads(client.get("w:callback:got")) == [0, 1, 4]
    assert h.status().counts["repeats"] >= 1  # the killed worker's members ran again
    client.close()
