"""Local child processes: start `redline` service instances, notice when they die, stop them.

Shared by the two supervisors, the cscale agent and `redline up`. Children run in their own
session, so a Ctrl-C meant for the supervisor does not reach them: the agent's outlive an agent
that is killed (another agent, or this one restarted, still sees them through their lifecycle
hashes); `up` stops its own in order, and asks the kernel to SIGTERM them if it dies
(`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROCESSES_ENV", "Child", "Children", "sigterm_when_parent_dies"]

log = logging.getLogger(__name__)

# `redline worker` runs one process per core unless told; a child started here is one instance
# its manager counts, restarts and stops by pid, so it gets one process unless its argv says
# otherwise (or the environment already sets it).
PROCESSES_ENV = "REDLINE_PROCESSES"

PR_SET_PDEATHSIG = 1


def sigterm_when_parent_dies() -> None:
    """In a child before exec: SIGTERM it when its parent dies (Linux; elsewhere nothing)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One started process; `tag` says what it was started for (e.g. its namespace)."""

    tag: str
    process: subprocess.Popen[bytes]
    started: float
    claim: str = ""
    instance_id: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid


class Children:
    """The processes this supervisor started and has not yet seen exit."""

    def __init__(self) -> None:
        self.running: dict[int, Child] = {}

    def start(
        self,
        tag: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = False,
    ) -> Child:
        """Start `argv` (stdout/stderr inherited, in `cwd`) and remember it under `tag`; with
        `die_with_parent`, it gets SIGTERM when this process dies (Linux)."""
        process = subprocess.Popen(
            list(argv),
            env={PROCESSES_ENV: "1", **os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=sigterm_when_parent_dies if die_with_parent else None,
        )
        child = Child(tag, process, time.monotonic())
        self.running[child.pid] = child
        log.info("started tag=%s pid=%s argv=%s", tag, child.pid, " ".join(argv))
        return child

    def reap(self) -> list[Child]:
        """The children that exited since the last call (no longer tracked)."""
        dead = [child for child in self.running.values() if child.process.poll() is not None]
        for child in dead:
            del self.running[child.pid]
            log.info("exited tag=%s pid=%s code=%s", child.tag, child.pid, child.process.returncode)
        return dead

    def of(self, tag: str) -> list[Child]:
        """The running children started under `tag`."""
        return [child for child in self.running.values() if child.tag == tag]

    def kill(self, child: Child, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to `child` (ignored if it already exited)."""
        if child.process.poll() is None:
            child.process.send_signal(sig)

    def stop_all(self, grace: float) -> None:
        """SIGTERM every child, wait up to `grace` seconds, then SIGKILL the rest."""
        for child in self.running.values():
            self.kill(child, signal.SIGTERM)
        self.wait_all(grace)

    def wait_all(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for every child to exit, then SIGKILL the rest."""
        deadline = time.monotonic() + timeout
        for child in list(self.running.values()):
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid=%s did not stop within %.0fs: killing it", child.pid, timeout)
                child.process.kill()
                child.process.wait()
        self.running.clear()
