"""Local child processes: start `redline` service instances, notice when they die, stop them.

Kept apart from cscale so another supervisor can share it. Children run in their own session,
so a Ctrl-C meant for the agent does not reach them and they outlive an agent that is killed
(another agent, or this one restarted, still sees them through their lifecycle hashes).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Child", "Children"]

log = logging.getLogger(__name__)


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

    def start(self, tag: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        """Start `argv` (stdout/stderr inherited) and remember it under `tag`."""
        process = subprocess.Popen(
            list(argv), env={**os.environ, **(env or {})}, start_new_session=True
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
