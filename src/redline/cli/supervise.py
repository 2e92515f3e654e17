"""`redline worker MODULE --processes N`: N worker processes, supervised.

The supervisor runs no jobs itself. It starts N ``redline worker`` children (the same
arguments, less ``--processes``; the server URL resolved once, so an embedded server is
shared), starts a new one whenever one exits — killed, crashed, or recycled after
``--max-jobs`` / ``--max-memory`` (`redline.jobs.recycle`) — and on SIGTERM or Ctrl-C stops
them all: SIGTERM to each, which finishes or returns the jobs it holds within its grace,
then SIGKILL for any still running after that. Children get SIGTERM if the supervisor itself
is killed (Linux), so none outlives it.

A child that dies within `QUICK` seconds of starting is restarted after a delay that doubles
each time (up to `BACKOFF_CAP`), so a worker that cannot start does not spin.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redline.scaling.procs import Children, Replicas, Restarts

__all__ = ["Supervisor", "cores"]

log = logging.getLogger(__name__)

QUICK = 5.0  # seconds: a child that dies sooner is restarted after a backoff
BACKOFF_CAP = 30.0
POLL = 0.2  # seconds between looks at the children
RESTARTS = Restarts(base=0.5, cap=BACKOFF_CAP, steady=QUICK, at_once_when_steady=True)


@dataclass
class Supervisor:
    """Keeps `processes` children running `argv` until `stop`; `grace` is how long stopping
    children get before SIGKILL."""

    argv: Sequence[str]
    processes: int
    grace: float
    children: Children = field(default_factory=Children)
    stopping: threading.Event = field(default_factory=threading.Event)
    restarts: int = 0

    def run(self) -> None:
        """Supervise until SIGTERM/SIGINT (installs those handlers: call it from the CLI)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        log.info("supervisor started processes=%d pid=%s", self.processes, os.getpid())
        workers = Replicas(self.children, "worker-", self.argv, RESTARTS)
        workers.resize(self.processes, self.grace)
        while not self.stopping.wait(POLL):
            self._replace_exited(workers)
        log.info("supervisor stopping children=%d", len(self.children.running))
        self.children.stop_all(self.grace)
        log.info("supervisor stopped restarts=%d", self.restarts)

    def _replace_exited(self, workers: Replicas) -> None:
        now = time.monotonic()
        for child, delay in workers.exited(self.children.reap(), now):
            log.warning(
                "worker exited slot=%s pid=%s code=%s lived=%.1fs restart_in=%.1fs",
                child.tag,
                child.pid,
                child.process.returncode,
                now - child.started,
                delay,
            )
        if not self.stopping.is_set():
            self.restarts += len(workers.start_due(now))


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def cores() -> int:
    """The cores this process may use: its CPU affinity, bounded by the CPU quota of its
    cgroup (a container limited to 2 CPUs on a 64-core host gets 2, not 64)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    quota = _cpu_quota()
    return max(1, min(usable, quota) if quota else usable)


def _cpu_quota() -> int | None:
    try:
        quota, period = CPU_MAX.read_text().split()[:2]
        return None if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError):
        return None


def child_argv(args: Sequence[str]) -> list[str]:
    """``redline ARGS`` run by this Python."""
    return [sys.executable, "-m", "redline", *args]
