"""`redline.scaling.procs` with real processes: replicas restarted in their slot, the newest
retired with SIGTERM and never restarted, a retired process that ignores SIGTERM killed once
its grace is over, and the restart pacing of `up` and of the worker supervisor."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from redline.scaling.procs import Child, Children, Replicas, Restarts
from tests.helpers import wait_for

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
FAST = Restarts(base=0.05, cap=0.05, steady=600)


def stubborn(ready: Path) -> list[str]:
    """A process that ignores SIGTERM, and says so by creating `ready`."""
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " open(sys.argv[1], 'w').close(); time.sleep(600)"
    )
    return [sys.executable, "-c", code, str(ready)]


class Rounds:
    """A supervisor's rounds over `replicas`, done by hand: reap, note the exits, restart."""

    def __init__(self, children: Children, replicas: Replicas) -> None:
        self.children, self.replicas = children, replicas
        self.exits: list[tuple[Child, float | None]] = []
        self.started: list[Child] = []

    def round(self) -> None:
        now = time.monotonic()
        self.exits += self.replicas.exited(self.children.reap(), now)
        self.started += self.replicas.start_due(now)


def test_a_replica_that_dies_is_restarted_in_its_slot() -> None:
    children = Children()
    replicas = Replicas(children, "svc.", SLEEP, FAST)
    rounds = Rounds(children, replicas)
    first = replicas.resize(2, grace=10)
    try:
        assert [child.tag for child in first] == ["svc.0", "svc.1"]
        os.kill(first[0].pid, signal.SIGKILL)
        wait_for(lambda: rounds.round() or rounds.started, timeout=60)
        (new,) = rounds.started
        assert new.tag == "svc.0" and new.pid != first[0].pid and new.process.poll() is None
        assert [(child.pid, delay is not None) for child, delay in rounds.exits] == [
            (first[0].pid, True)
        ]
        assert [slot.child for slot in replicas.slots] == [new, first[1]]
        assert replicas.slots[0].quick == 1 and len(children.running) == 2
    finally:
        children.stop_all(10)
    assert not children.running
    assert all(child.process.poll() is not None for child in [*first, new])


def test_the_newest_replicas_are_retired_with_sigterm_and_not_restarted() -> None:
    children = Children()
    replicas = Replicas(children, "svc.", SLEEP, FAST)
    rounds = Rounds(children, replicas)
    started = replicas.resize(3, grace=10)
    try:
        assert replicas.resize(1, grace=60) == []
        assert len(replicas) == 1 and replicas.slots[0].child is started[0]
        wait_for(lambda: rounds.round() or len(rounds.exits) == 2, timeout=60)
        retired = {child.pid: (delay, child.process.returncode) for child, delay in rounds.exits}
        assert retired == {
            started[1].pid: (None, -signal.SIGTERM),
            started[2].pid: (None, -signal.SIGTERM),
        }
        for _ in range(3):
            rounds.round()
        assert rounds.started == [] and list(children.running) == [started[0].pid]
        assert replicas.resize(2, grace=10)[0].tag == "svc.3"  # a new slot, not an old one
    finally:
        children.stop_all(10)
    assert not children.running


def test_a_retired_process_that_ignores_sigterm_is_killed_after_its_grace(
    tmp_path: Path,
) -> None:
    children = Children()
    replicas = Replicas(children, "svc.", stubborn(tmp_path / "ready"), FAST)
    rounds = Rounds(children, replicas)
    (child,) = replicas.resize(1, grace=10)
    try:
        wait_for((tmp_path / "ready").exists, timeout=60)  # SIGTERM is ignored from now on
        replicas.resize(0, grace=0.5)
        assert child.retire_by is not None and child.process.poll() is None
        wait_for(lambda: rounds.round() or rounds.exits, timeout=60)
        assert rounds.exits == [(child, None)]
        assert child.process.returncode == -signal.SIGKILL
        assert rounds.started == [] and not children.running
    finally:
        children.stop_all(10)


def test_restart_pacing_doubles_after_quick_exits_and_starts_over_after_a_steady_run() -> None:
    worker = Restarts(base=0.5, cap=30.0, steady=5.0, at_once_when_steady=True)
    quick, delays = 0, []
    for ran in [1, 1, 1, 1, 1, 1, 1, 1, 10, 1]:
        quick, delay = worker.after(quick, ran)
        delays.append(delay)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 0, 0.5]
    up = Restarts(base=0.2, cap=10.0, steady=30.0, jitter=0.5)
    counts = []
    quick = 0
    for ran in [1, 1, 1, 40, 1]:
        quick, delay = up.after(quick, ran)
        counts.append(quick)
        assert 0.1 * 2 ** (quick - 1) <= delay <= min(10.0, 0.2 * 2 ** (quick - 1))
    assert counts == [1, 2, 3, 1, 2]
