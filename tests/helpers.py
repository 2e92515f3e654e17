"""Small helpers the tests share: running redline as a real process, waiting for conditions."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis
from click.testing import CliRunner

from redline.cli import main
from redline.services.pending import pending_key

REDLINE = [sys.executable, "-m", "redline"]


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`.

    The default is generous: a wait costs only as long as the condition takes, and CI runs
    three test processes on two cores (a 10 s default failed there: a lifecycle hash renewed
    every 5 s, under load)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def spawn(
    *args: str, log: Path | None = None, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.Popen[str]:
    """Start `redline ARGS…` as a real process; output to `log` (or a pipe)."""
    out = open(log, "a") if log else subprocess.PIPE  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [*REDLINE, *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )
    if log:
        out.close()  # type: ignore[union-attr]
    return proc


def spawn_worker(
    module: str,
    url: str,
    queue: str,
    log: Path,
    *extra: str,
    concurrency: int = 8,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """A real `redline worker` of `module`'s tasks on `queue`, quick to notice a death: a
    1.5 s lease, a 0.5 s pop timeout, a 1 s grace at stop."""
    return spawn(
        *("worker", module, "--redis", url, "-q", queue, "-c", str(concurrency)),
        *("--set", "lease=1.5", "--set", "popTimeout=0.5", "--set", "grace=1"),
        *extra,
        log=log,
        env=env,
    )


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run `redline ARGS…` to completion and capture its output."""
    return subprocess.run(
        [*REDLINE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def invoke(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`redline ARGS…` run in this process (click's CliRunner), answered as `run` answers.

    For tests of what a command prints and its exit code: no Python start-up (about 0.8 s
    idle, several seconds on a loaded machine). What only a real process shows (signals, a
    traceback at exit, the entry point) stays with `run`; each command group keeps at least
    one test through it. An exception no command caught is raised here, not printed.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # `main` points the root logger at stderr
    try:
        done = CliRunner().invoke(main, list(args), input, env, catch_exceptions=False)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess(["redline", *args], done.exit_code, done.stdout, done.stderr)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    """Signal `proc` and wait for it; SIGKILL if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def stopped(pid: int) -> bool:
    """Whether every thread of `pid` is stopped by a signal (state ``T`` in /proc)."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        states.append(text[text.rindex(")") + 2])
    return bool(states) and set(states) == {"T"}


def kill_holding(proc: subprocess.Popen[str] | int, holding: Callable[[], Any]) -> bool:
    """SIGKILL `proc` (a child, or the pid of another's) while it provably holds work in hand;
    False (and `proc` left running) if the work was finished before it could be frozen: the
    caller looks for the next chance.

    A check followed by a kill races the process: it may finish its work between the two. So
    the process is frozen first (SIGSTOP, and /proc shows it stopped: it sends nothing more),
    `holding()` is checked on the frozen state, twice (a command it sent just before the stop
    is served first), and only then is it killed: what `holding()` saw is what it left.
    """
    pid = proc if isinstance(proc, int) else proc.pid
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: stopped(pid), timeout=10, interval=0.005)
    if holding() and holding():
        os.kill(pid, signal.SIGKILL)
        if not isinstance(proc, int):
            proc.wait()
        return True
    os.kill(pid, signal.SIGCONT)
    return False


def park_and_kill(
    client: redis.Redis,
    source: str,
    pending: str,
    targets: Mapping[str, subprocess.Popen[str] | int],
    probe: bytes,
) -> tuple[str, int] | None:
    """Kill a forwarding instance (mpush, lpush, …) with a message parked in its pending list.

    Pushes `probe` onto `source` while the instances wait in their BLMOVE (the caller waits
    for `source` to be empty): the server moves it into one instance's pending list before it
    serves the LLENs sent in the same pipeline. That instance is killed if the probe is still
    parked once it is frozen (`kill_holding`). `targets`: instance id → process or pid.
    Returns (instance id, messages it left parked), or None when the probe was forwarded
    first (it is then on the outputs like any message) or went to an instance not in
    `targets`.
    """
    pipe = client.pipeline(transaction=False).lpush(source, probe)
    for ident in targets:
        pipe.llen(pending_key(pending, ident))
    _, *lengths = pipe.execute()
    for (ident, target), length in zip(targets.items(), lengths, strict=True):
        parked = lambda i=ident: client.llen(pending_key(pending, i))  # noqa: E731
        if length and kill_holding(target, parked):
            return ident, int(parked())
    return None
