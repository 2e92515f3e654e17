"""Local child processes: start `redline` service instances, notice when they die, stop them.

The one child-process handling of redline, shared by its three supervisors: the cscale agent,
`redline up` and `redline worker --processes`. `Children` starts, reaps, retires and stops
processes; `Replicas` keeps a count of one command line running on top of it, each in a slot
of its own that `Restarts` paces when its process exits. Children run in their own session,
so a Ctrl-C meant for the supervisor does not reach them: the agent's outlive an agent that is
killed (another agent, or this one restarted, still sees them through their lifecycle hashes);
`up` and the worker supervisor stop theirs in order, and ask the kernel to SIGTERM them if
they die (`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redline.backoff import delay_for

__all__ = [
    "PROCESSES_ENV",
    "Child",
    "Children",
    "Replicas",
    "Restarts",
    "Slot",
    "sigterm_when_parent_dies",
]

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
    """One started process; `tag` says what it was started for (e.g. its namespace or slot).

    `retire_by` is set once it was asked to stop (`Children.retire`): the moment after which
    it is killed."""

    tag: str
    process: subprocess.Popen[bytes]
    started: float
    claim: str = ""
    instance_id: str = ""
    retire_by: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


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
        """The children that exited since the last call (no longer tracked); a retired child
        still running past its `retire_by` is killed (and found exited by a later call)."""
        now = time.monotonic()
        for child in self.running.values():
            if child.retire_by is not None and now >= child.retire_by and child.alive:
                log.warning("tag=%s pid=%s did not stop: killing it", child.tag, child.pid)
                child.process.kill()
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

    def retire(self, child: Child, grace: float) -> None:
        """Ask `child` to stop (SIGTERM: it finishes or hands back what it holds); `reap` kills
        it if it still runs `grace` seconds later."""
        child.retire_by = time.monotonic() + grace
        self.kill(child, signal.SIGTERM)

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


@dataclass(frozen=True)
class Restarts:
    """How soon a slot whose process exited starts a new one, so that a command that cannot
    start does not spin. Each quick exit in a row doubles the delay from `base` up to `cap`
    (`jitter`: the fraction drawn at random, see `delay_for`); a process that ran `steady`
    seconds or more starts the count over — and is replaced at once with `at_once_when_steady`.
    """

    base: float
    cap: float
    steady: float
    jitter: float = 0.0
    at_once_when_steady: bool = False

    def after(self, quick: int, ran: float) -> tuple[int, float]:
        """The slot's new count of quick exits and the delay, for a process that ran `ran`
        seconds after `quick` quick exits in a row."""
        if ran >= self.steady:
            if self.at_once_when_steady:
                return 0, 0.0
            quick = 0
        return quick + 1, delay_for(quick + 1, self.base, self.cap, self.jitter)


@dataclass
class Slot:
    """One place of `Replicas`: its process, or none until `due` (a restart waiting)."""

    name: str
    child: Child | None = None
    due: float = 0.0
    quick: int = 0


@dataclass
class Replicas:
    """`len(self)` processes of one command line, each in a slot named `prefix` + a number.

    The owner reaps `children` once a round and hands what died to `exited` (which says when
    each slot restarts), then calls `start_due`. `resize` adds slots (started at once) or
    retires the newest (SIGTERM, no restart; killed `grace` seconds later if still running).
    """

    children: Children
    prefix: str
    argv: Sequence[str]
    restarts: Restarts
    cwd: Path | None = None
    slots: list[Slot] = field(default_factory=list)
    retired: list[Child] = field(default_factory=list)
    made: int = 0

    def __len__(self) -> int:
        return len(self.slots)

    def resize(self, count: int, grace: float) -> list[Child]:
        """Add or retire slots until there are `count`; the processes started."""
        started = []
        while len(self.slots) < count:
            slot = Slot(f"{self.prefix}{self.made}")
            self.made += 1
            self.slots.append(slot)
            started.append(self._start(slot))
        while len(self.slots) > count:
            child = self.slots.pop().child
            if child is not None:
                self.children.retire(child, grace)
                self.retired.append(child)
        return started

    def exited(self, dead: Iterable[Child], now: float) -> list[tuple[Child, float | None]]:
        """Of the children found exited, those of this group: each with the delay before its
        slot restarts, or None for one that was retired."""
        out: list[tuple[Child, float | None]] = []
        for child in dead:
            slot = next((slot for slot in self.slots if slot.child is child), None)
            if slot is not None:
                slot.quick, delay = self.restarts.after(slot.quick, now - child.started)
                slot.child, slot.due = None, now + delay
                out.append((child, delay))
            elif any(retired is child for retired in self.retired):
                self.retired = [retired for retired in self.retired if retired is not child]
                out.append((child, None))
        return out

    def start_due(self, now: float) -> list[Child]:
        """Start the slots whose restart is due; the processes started."""
        return [self._start(slot) for slot in self.slots if slot.child is None and now >= slot.due]

    def _start(self, slot: Slot) -> Child:
        slot.child = self.children.start(slot.name, self.argv, cwd=self.cwd, die_with_parent=True)
        return slot.child
