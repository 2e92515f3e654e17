"""A consumer process for the crash tests: pop, log what it got, work, ack, log what was acked.

    python -m tests.queue.crash_consumer URL KEY LOGFILE BATCH LEASE sync|async

Each log line is one unbuffered write, so a SIGKILL leaves every line before it intact:
``S id:token id:token …`` (delivered) before the work, ``A id id …`` (acknowledged) after.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from redline.connection import connect, connect_sync
from redline.queue import Delivery, ReliableQueue, SyncReliableQueue

WORK = 0.004  # seconds of "work" per batch, so that kills land mid-stream


def _line(fd: int, tag: str, items: list[str]) -> None:
    os.write(fd, f"{tag} {' '.join(items)}\n".encode())


def _seen(fd: int, batch: list[Delivery]) -> None:
    _line(fd, "S", [f"{d.id}:{d.deliveries}" for d in batch])


def run_sync(url: str, key: str, fd: int, batch_size: int, lease: float) -> None:
    queue = SyncReliableQueue(connect_sync(url), lease=lease, max_deliveries=1000)
    while True:
        batch = queue.pop(key, count=batch_size, block=0.5)
        if batch:
            _seen(fd, batch)
            time.sleep(WORK)
            _line(fd, "A", queue.ack(*batch))


async def run_async(url: str, key: str, fd: int, batch_size: int, lease: float) -> None:
    queue = ReliableQueue(connect(url), lease=lease, max_deliveries=1000)
    while True:
        batch = await queue.pop(key, count=batch_size, block=0.5)
        if batch:
            _seen(fd, batch)
            await asyncio.sleep(WORK)
            _line(fd, "A", await queue.ack(*batch))


def main(argv: list[str]) -> None:
    url, key, path, batch, lease, mode = argv
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    if mode == "sync":
        run_sync(url, key, fd, int(batch), float(lease))
    else:
        asyncio.run(run_async(url, key, fd, int(batch), float(lease)))


if __name__ == "__main__":
    main(sys.argv[1:])
