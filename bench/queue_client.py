"""The queue's client CPU per message at batch 1, which a loaded machine moves far less than rates.

Runs `bench queue`'s batch-1 producer and consumer (the same functions: one push of one per
call; one pop of one per call acking the previous delivery, blocking when the queue is empty)
on the embedded server, and beside them the plain list's pair, each process measuring its own
CPU (`os.times`: user and system, so the kernel's share of the sends and reads shows) over the
whole run. Per message, in µs. Compare two trees with it in interleaved runs: the CPU a process
spends per message moves with a loaded machine (cold caches after each wait, frequency), but
far less than the messages per second do. `BENCH_CLIENT_MESSAGES` (default 20000): messages per
run; `BENCH_CLIENT_RUNS` (default 3): runs of each pair, interleaved; `BENCH_CLIENT_PROFILE=1`:
also profile the consumer of the last run (cProfile: Python calls per message, and the
functions with the most own time).
"""

from __future__ import annotations

import cProfile
import io
import multiprocessing
import os
import pstats
from collections.abc import Callable
from multiprocessing.connection import Connection

from rich.console import Console
from rich.table import Table

from bench.queue import _consume, _consume_raw, _free_port, _produce, _produce_raw
from redline.connection import connect_sync
from redline.connection.embedded import EmbeddedServer

Role = Callable[[str, int, int], None]


def _timed(role: Role, url: str, n: int, out: Connection, profile: bool) -> None:
    """Run `role`, then send (user, system) seconds of CPU it took, and the profile's text."""
    began = os.times()
    report = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(role, url, 1, n)
        report = _profile_text(profiler, n)
    else:
        role(url, 1, n)
    done = os.times()
    out.send((done.user - began.user, done.system - began.system, report))


def _profile_text(profiler: cProfile.Profile, n: int) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    calls = sum(row[1] for row in stats.stats.values())  # type: ignore[attr-defined]
    stream.write(f"Python calls per message: {calls / n:.1f}\n")
    stats.sort_stats("tottime").print_stats(25)
    return stream.getvalue()


def _pair(url: str, n: int, raw: bool, profile: bool) -> dict[str, tuple[float, float, str]]:
    """Each role's (user µs, system µs per message, profile text) for one run of the pair."""
    connect_sync(url).flushdb()
    ctx = multiprocessing.get_context("fork")
    roles = {"consumer": _consume_raw, "producer": _produce_raw}
    if not raw:
        roles = {"consumer": _consume, "producer": _produce}
    results = {}
    procs = []
    for name, role in roles.items():
        mine, theirs = ctx.Pipe(duplex=False)
        wanted = profile and name == "consumer"
        proc = ctx.Process(target=_timed, args=(role, url, n, theirs, wanted))
        proc.start()
        procs.append((name, proc, mine))
    for name, proc, mine in procs:
        user, system, text = mine.recv()
        proc.join()
        results[name] = (user / n * 1e6, system / n * 1e6, text)
    return results


def main() -> None:
    n = int(os.environ.get("BENCH_CLIENT_MESSAGES", "20000"))
    runs = int(os.environ.get("BENCH_CLIENT_RUNS", "3"))
    profile = os.environ.get("BENCH_CLIENT_PROFILE") == "1"
    table = Table(title=f"queue, batch 1: client CPU per message, µs ({n:,} messages a run)")
    for column in ("run", "what", "consumer user+sys", "producer user+sys"):
        table.add_column(column, justify="left" if column in ("run", "what") else "right")
    text = ""
    with EmbeddedServer(port=_free_port()) as server:
        for run in range(1, runs + 1):
            for raw in (True, False):
                last = profile and run == runs and not raw
                got = _pair(server.url, n, raw, last)
                cells = [f"{u:.1f}+{s:.1f}" for u, s, _ in (got["consumer"], got["producer"])]
                what = "plain list" if raw else "ReliableQueue"
                table.add_row(str(run), what, *cells)
                text = got["consumer"][2] or text
    Console(width=120).print(table)
    if text:
        print(text)
