"""A limited job's server cost in instructions, which a loaded machine does not change.

Like `queue_cost` (whose callgrind harness it uses): the embedded Valkey under valgrind's
callgrind, counters zeroed once the scripts are loaded, instructions per job for fixed steps of
one `SyncReliableQueue` at the jobs worker's batch of 64: a push of 64 then a pop of 64 acking
the previous batch (plain: what every drained job costs the server), and the same step with the
popped batch passed through `job_admit` under a rate limit far above the rate (1,000,000/s, the
bench's `redline-rate`) or a cap of 64 (`redline-cap`, the previous batch's slots given back
in the call, as the worker's `Gate.finish` queues them), called as the worker calls it (FCALL of
the `redline_jobs` library). The admission's own cost is the difference. Needs valgrind
(`apt-get install valgrind`); skipped, saying so, without it.
`BENCH_COST_STEPS` (default 100): steps per sequence.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.queue_cost import counted_server, valgrind_missing
from redline.connection import SyncClient
from redline.jobs.admission import Admission, Limit, limits_of, verdicts
from redline.jobs.library import LIBRARY
from redline.jobs.options import Rate
from redline.jobs.usage import limit_keys
from redline.queue import Delivery, SyncReliableQueue

BATCH = 64
PAYLOAD = b'{"task":"bench.noop","id":"x","args":[],"kwargs":{}}'
LEASE_MS = 30_000


def _admit(client: SyncClient, queue: str, popped: list[Delivery], limits: Any) -> None:
    """One `job_admit` call on `popped`, giving back the slots `limits` names of `released`."""
    limit, rate, slots, log, released = limits
    call = Admission(queue, {slots: released})
    for d in popped:
        call.add(d, 0, limits_of(limit, slots, rate, log))
    keys, args = call.call(LEASE_MS)
    found = verdicts(LIBRARY.call_sync(client, "job_admit", keys, args))
    if any(code != 1 for code, _, _ in found):
        raise RuntimeError(f"admit_cost: a job was not admitted: {found[:3]}")


def _step(
    queue: SyncReliableQueue, client: SyncClient, name: str, cap: int, rate: Rate | None
) -> Callable[[], object]:
    """push 64, pop 64 acking the last batch; admitted under `cap`/`rate` unless both are 0."""
    held: list[Delivery] = []
    slots: Limit = limit_keys(name, "concurrency", "t", None)
    log: Limit = limit_keys(name, "rate", "t", None)

    def step() -> None:
        nonlocal held
        queue.push(name, *([PAYLOAD] * BATCH))
        released = [d.id for d in held] if cap else []
        held = queue.pop(name, count=BATCH, ack=held)
        if cap or rate:
            _admit(client, name, held, (cap, rate, slots, log, released))

    return step


def main() -> None:
    if valgrind_missing("admit_cost"):
        return
    steps = int(os.environ.get("BENCH_COST_STEPS", "100"))
    table = Table(title=f"admission: server instructions per job (callgrind, batches of {BATCH})")
    for column in ("step", "instructions / job", "the admission's share / job"):
        table.add_column(column, justify="left" if column == "step" else "right")
    with counted_server() as server:
        queue = SyncReliableQueue(server.client)
        counts: dict[str, float] = {}
        for name, cap, rate in (
            ("plain", 0, None),
            ("rate 1000000/s", 0, Rate(1_000_000, 1000)),
            ("cap 64", BATCH, None),
        ):
            step = _step(queue, server.client, name.split()[0], cap, rate)
            step()  # the scripts loaded, the first batch held, before counting
            counts[name] = server.count(step, steps) / BATCH
    for name, count in counts.items():
        table.add_row(
            f"push + pop + ack, {name}", f"{count:,.0f}", f"{count - counts['plain']:,.0f}"
        )
    Console(width=120).print(table)
