"""ReliableQueue throughput, push -> pop -> ack, against the raw LPUSH/RPOP ceiling.

One producer process pushes N messages in batches; one consumer process pops them in batches of
the same size, acknowledging each batch with the next pop (`pop(..., ack=batch)`: one round trip
per batch). Beside it, on the same embedded server: `redis-benchmark` LPUSH and RPOP with 16
pipelined commands (when installed), a pipelined redis-py LPUSH-then-RPOP loop, and - the
comparable floor - the same two processes and batches on a plain list (one `LPUSH key p1..pn`
per batch, one `RPOP key n` per batch, BRPOP when empty), none with any guarantee. Uses
SyncReliableQueue (the asyncio class makes the same server calls).

The plain list and the queue run in turns, `REDLINE_BENCH_ROUNDS` rounds (default 3), and each
keeps its best round (as `bench jobs` does): a VM whose speed drifts within a minute then moves
both sides of a ratio alike, not one of them.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import shutil
import socket
import subprocess
import time

from rich.console import Console
from rich.table import Table

from redline.connection import connect_sync
from redline.connection.embedded import EmbeddedServer
from redline.queue import Delivery, SyncReliableQueue

CASES = ((1, 20_000), (100, 300_000))  # (batch, messages)
RAW = 200_000
ROUNDS = int(os.environ.get("REDLINE_BENCH_ROUNDS", "3"))


def _produce(url: str, batch: int, n: int) -> None:
    queue = SyncReliableQueue(connect_sync(url))
    payload = b"x" * 64
    for start in range(0, n, batch):
        queue.push("bench", *([payload] * min(batch, n - start)))


def _consume(url: str, batch: int, n: int) -> None:
    queue = SyncReliableQueue(connect_sync(url))
    got, held = 0, []
    while got < n:
        held = queue.pop("bench", count=batch, block=1, ack=held)
        got += len(held)
    acked: list[Delivery] = held
    queue.ack(*acked)


def _produce_raw(url: str, batch: int, n: int) -> None:
    client = connect_sync(url)
    payload = b"x" * 64
    for start in range(0, n, batch):
        client.lpush("raw", *([payload] * min(batch, n - start)))


def _consume_raw(url: str, batch: int, n: int) -> None:
    client = connect_sync(url)
    got = 0
    while got < n:
        taken = client.rpop("raw", batch)
        if taken:
            got += len(taken)
        elif client.brpop(["raw"], timeout=1):
            got += 1


def end_to_end(url: str, batch: int, n: int, raw: bool = False) -> tuple[float, float]:
    """Messages/s from the producer's start to the consumer's last ack (`raw`: plain list), and
    the server's µs per message in commands (`INFO commandstats`, those run by scripts included:
    the wall time inside them, so a preempted server inflates it)."""
    client = connect_sync(url)
    client.flushdb()
    client.config_resetstat()
    ctx = multiprocessing.get_context("fork")
    pair = (_consume_raw, _produce_raw) if raw else (_consume, _produce)
    procs = [ctx.Process(target=f, args=(url, batch, n)) for f in pair]
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    rate = n / (time.perf_counter() - began)
    stats = client.info("commandstats")
    return rate, sum(v["usec"] for k, v in stats.items() if "config" not in k) / n


def interleaved(url: str, batch: int, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """`end_to_end` of the plain list and of the queue in turns, `ROUNDS` times: the best round
    of each (its rate and server µs per message)."""
    plain, queue = [], []
    for _ in range(ROUNDS):
        plain.append(end_to_end(url, batch, n, raw=True))
        queue.append(end_to_end(url, batch, n))
    return max(plain), max(queue)


def pipelined(url: str, n: int = RAW, depth: int = 100) -> float:
    """A redis-py pipeline of `depth` LPUSH, then one of `depth` RPOP: messages/s through both."""
    client = connect_sync(url)
    client.flushdb()
    began = time.perf_counter()
    for _ in range(0, n, depth):
        pipe = client.pipeline(transaction=False)
        for _ in range(depth):
            pipe.lpush("raw", b"x" * 64)
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        for _ in range(depth):
            pipe.rpop("raw")
        pipe.execute()
    return n / (time.perf_counter() - began)


def redis_benchmark(port: int) -> float | None:
    """messages/s through LPUSH and RPOP (each message is pushed once and popped once)."""
    if shutil.which("redis-benchmark") is None:
        return None
    args = ["redis-benchmark", "-p", str(port), "-t", "lpush,rpop", "-P", "16", "-n", str(RAW)]
    out = subprocess.run(
        [*args, "-q", "--csv"], capture_output=True, text=True, check=True, timeout=120
    )
    rows = [row for row in csv.reader(io.StringIO(out.stdout)) if row[1:] and row[0] != "test"]
    rates = {row[0]: float(row[1]) for row in rows}
    push, pop = rates["LPUSH"], rates["RPOP"]
    return 1 / (1 / push + 1 / pop)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    port = _free_port()
    with EmbeddedServer(port=port) as server:
        ceiling = redis_benchmark(port)
        raw = pipelined(server.url)
        rows = [(b, n, *interleaved(server.url, b, n)) for b, n in CASES]
    base = ceiling or raw
    title = "queue: push -> pop -> ack, one producer and one consumer process"
    table = Table(title=f"{title} (best of {ROUNDS} interleaved rounds)")
    table.add_column("what")
    table.add_column("messages/s", justify="right")
    table.add_column("vs ceiling", justify="right")
    table.add_column("vs plain list", justify="right")
    table.add_column("server µs/msg", justify="right")
    if ceiling:
        table.add_row("redis-benchmark LPUSH+RPOP -P 16 (ceiling)", f"{ceiling:,.0f}", "1.00x", "")
    table.add_row("redis-py pipelined LPUSH+RPOP (x100)", f"{raw:,.0f}", f"{raw / base:.2f}x", "")
    for batch, n, (plain, plain_us), (rate, rate_us) in rows:
        table.add_row(
            f"plain list LPUSH/RPOP batch={batch}",
            f"{plain:,.0f}",
            f"{plain / base:.2f}x",
            "1.00x",
            f"{plain_us:.1f}",
        )
        table.add_row(
            f"ReliableQueue batch={batch} ({n:,} msgs)",
            f"{rate:,.0f}",
            f"{rate / base:.2f}x",
            f"{rate / plain:.2f}x",
            f"{rate_us:.1f}",
        )
    Console(width=120).print(table)
