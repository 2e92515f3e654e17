"""Crash test: consumers SIGKILLed at random moments lose nothing and duplicate only what the
killed ones held."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from redline.connection import connect_sync
from redline.queue import QueueInfo, SyncReliableQueue
from tests.helpers import wait_for

N, KILLS, CONSUMERS, BATCH, LEASE = 20_000, 24, 3, 10, 3.0


@dataclass
class Consumer:
    log: Path
    proc: subprocess.Popen[bytes]
    killed: bool = False

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def started(self) -> int:
        """How many batches it has logged as taken ("S" lines)."""
        return sum(line.startswith("S") for line in self.lines())


@dataclass
class Run:
    url: str
    dir: Path
    consumers: list[Consumer] = field(default_factory=list)

    def start(self) -> Consumer:
        n = len(self.consumers)
        log = self.dir / f"consumer-{n}.log"
        mode = "async" if n % 2 else "sync"
        args = [self.url, "q", str(log), str(BATCH), str(LEASE), mode]
        proc = subprocess.Popen([sys.executable, "-m", "tests.queue.crash_consumer", *args])
        consumer = Consumer(log, proc)
        self.consumers.append(consumer)
        return consumer

    def kill_one(self, alive: list[Consumer]) -> Consumer:
        # A victim among those already consuming: waiting on one still starting up (Python's
        # start-up is slow on a loaded machine) while the others drain the queue could leave
        # no message for it to take, and the wait below would never end.
        working = wait_for(lambda: [c for c in alive if c.started()], 60)
        victim = random.choice(working)
        before = victim.started()
        wait_for(lambda: victim.started() > before, 60)
        time.sleep(random.uniform(0, 0.01))  # a random moment of its pop-work-ack cycle
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        victim.killed = True
        return victim


def _deliveries(consumer: Consumer) -> tuple[list[tuple[str, int]], list[str]]:
    seen: list[tuple[str, int]] = []
    acked: list[str] = []
    for line in consumer.lines():
        tag, *items = line.split()
        if tag == "S":
            seen += [(i, int(n)) for i, n in (item.split(":") for item in items)]
        else:
            acked += items
    return seen, acked


@pytest.mark.slow
def test_sigkilled_consumers_lose_nothing(redis_url: str, tmp_path: Path) -> None:
    queue = SyncReliableQueue(connect_sync(redis_url))
    ids = queue.push("q", *(f"m{i}".encode() for i in range(N)))
    run = Run(redis_url, tmp_path)
    alive = [run.start() for _ in range(CONSUMERS)]
    try:
        for _ in range(KILLS):
            victim = run.kill_one(alive)
            alive.remove(victim)
            alive.append(run.start())
        wait_for(lambda: queue.info("q") == QueueInfo("q", 0, 0, 0, 0, 0), 120)
        # the server ran the last ack; the consumer that sent it writes its "A" line next
        wait_for(lambda: all(_all_acked(c) for c in alive), 30)
    finally:
        for consumer in alive:
            consumer.proc.kill()
            consumer.proc.wait()
    _check(run, ids)


def _all_acked(consumer: Consumer) -> bool:
    seen, acked = _deliveries(consumer)
    return {i for i, _ in seen} <= set(acked)


def _check(run: Run, ids: list[str]) -> None:
    killed = [c for c in run.consumers if c.killed]
    assert len(killed) == KILLS
    held_by_killed: set[tuple[str, int]] = set()  # logged deliveries a killed one never acked
    by_live: set[tuple[str, int]] = set()
    delivered: list[tuple[str, int]] = []
    acked: Counter[str] = Counter()
    for consumer in run.consumers:
        seen, done = _deliveries(consumer)
        delivered += seen
        acked.update(done)
        unacked = {d for d in seen if d[0] not in set(done)}
        if consumer.killed:
            held_by_killed |= unacked
        else:
            assert not unacked  # a live consumer acked all it got: its work was never redone
            by_live |= set(seen)
    assert max(acked.values()) == 1  # no id acknowledged twice
    assert {i for i, _ in delivered} == set(ids)  # every message delivered, none lost
    # Every message is gone from the queue (info all 0) and only an ack removes one, so the
    # ids in no "A" line were acked by a consumer killed before it could write the line.
    assert set(ids) - set(acked) <= {i for i, _ in held_by_killed}
    # A redelivery (token n > 1) follows a delivery (n - 1) that no surviving consumer had and
    # nobody acked: one a killed consumer held (logged, or taken just before the kill).
    logged = set(delivered)
    for mid, n in delivered:
        if n > 1:
            assert (mid, n - 1) not in by_live and acked[mid] <= 1
            assert (mid, n - 1) in held_by_killed or (mid, n - 1) not in logged
    duplicates = len(delivered) - len(ids)
    assert duplicates <= len(killed) * BATCH  # at most the batch in hand at each kill
    # Kills hit work in hand: batches logged as taken and never acked, and delivered again.
    # (Measured: 16 of 24 kills left a logged batch unacked, 110 of its 160 deliveries were
    # redelivered; the rest had been acked on the server just before the kill.)
    redelivered = {(mid, n - 1) for mid, n in delivered if n > 1}
    assert held_by_killed & redelivered, "no kill interrupted a batch that was then redelivered"
