"""mpush fan-out to 2 outputs, one instance, at batch 1 and batch 100, beside the raw ceiling.

The ceiling is measured in the same run on the same server: a pipelined redis-py loop of LPUSH
then RPOP (100 commands per pipeline), and ``redis-benchmark -P 16`` for LPUSH and RPOP when it
is on PATH. Set ``REDLINE_BENCH_URL`` to measure against a server of your own (it is flushed).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time

from rich.console import Console
from rich.table import Table

from bench._server import server
from redline.connection import connect, connect_sync
from redline.runtime import run_service
from redline.services import mpush

OUTS = ["bench:out0", "bench:out1"]


async def _mpush_rate(url: str, batch: int, count: int) -> float:
    client = connect(url)
    await client.flushdb()
    payloads = [f"message-{i:07d}".encode() for i in range(count)]
    for start in range(0, count, 10_000):
        await client.lpush("bench:in", *payloads[start : start + 10_000])
    config = mpush.MpushConfig.model_validate(
        {"redis": url, "in": "bench:in", "out": OUTS, "batch": batch, "popTimeout": 1}
    )
    forwarder, hooks = mpush.build(config)
    stopping = asyncio.Event()
    began = time.perf_counter()
    task = asyncio.create_task(run_service(forwarder, config, hooks, stopping))
    while True:  # polling the output is the measurement: no event to wait on
        if await client.llen(OUTS[1]) >= count:
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    stopping.set()
    await task
    await client.aclose()
    return count / elapsed


def _pipelined_ceiling(url: str, count: int = 200_000, depth: int = 100) -> float:
    client = connect_sync(url)
    client.flushdb()
    began = time.perf_counter()
    for _ in range(count // depth):
        pipe = client.pipeline(transaction=False)
        for i in range(depth):
            pipe.lpush("bench:raw", i)
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        for _ in range(depth):
            pipe.rpop("bench:raw")
        pipe.execute()
    return count / (time.perf_counter() - began)


def _redis_benchmark(url: str) -> dict[str, float]:
    if shutil.which("redis-benchmark") is None:
        return {}
    port = url.rsplit(":", 1)[1].split("/")[0]
    args = ["redis-benchmark", "-p", port, "-P", "16", "-n", "500000", "-q", "-t", "lpush,rpop"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    found = re.findall(r"(LPUSH|RPOP).*?: ([\d.]+) requests per second", out.replace("\r", "\n"))
    return {name: float(rate) for name, rate in found}


def main() -> None:
    with server() as url:
        rows = [
            ("mpush, 2 outputs, batch 1", asyncio.run(_mpush_rate(url, 1, 20_000)), "msgs/s"),
            ("mpush, 2 outputs, batch 100", asyncio.run(_mpush_rate(url, 100, 300_000)), "msgs/s"),
            ("redis-py pipelined LPUSH+RPOP (100/pipe)", _pipelined_ceiling(url), "msgs/s"),
        ]
        for name, rate in _redis_benchmark(url).items():
            rows.append((f"redis-benchmark -P 16 {name}", rate, "commands/s"))
    table = Table(title=f"mpush fan-out vs the raw ceiling ({os.cpu_count()} cores)")
    for column in ("what", "rate", "unit"):
        table.add_column(column, justify="right" if column == "rate" else "left")
    for name, rate, unit in rows:
        table.add_row(name, f"{rate:,.0f}", unit)
    Console().print(table)
