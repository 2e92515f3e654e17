"""Test actors run as real processes: a producer and a consumer of a ReliableQueue.

``python -m tests.hardening.actors produce URL KEY FILE PREFIX [WAIT_REPLICAS]`` pushes batches of
``PREFIX-<n>`` until SIGTERM, retrying a failed batch with backoff, and appends each payload to
FILE only once its push was acknowledged (returned ids; with WAIT_REPLICAS, replicated too).
``python -m tests.hardening.actors consume URL KEY FILE`` pops, appends each payload to FILE,
then acks (a redelivery appends it again: the file is at-least-once, like the queue).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from redline.backoff import Backoff
from redline.connection import connect
from redline.errors import TRANSIENT, RedlineError
from redline.logs import configure
from redline.queue import ReliableQueue

BATCH = 20
RETRIED = (*TRANSIENT, RedlineError)


async def produce(url: str, key: str, out: Path, prefix: str, replicas: int) -> None:
    queue = ReliableQueue(connect(url, socket_timeout=2))
    backoff, n = Backoff(f"producer={prefix} push"), 0
    with out.open("a") as file:
        while not STOPPING.is_set():
            batch = [f"{prefix}-{i}" for i in range(n, n + BATCH)]
            try:
                await queue.push(key, *batch, wait_replicas=replicas, wait_timeout=1)
            except RETRIED as exc:
                await backoff.failed(exc)
                continue
            backoff.succeeded()
            file.write("".join(p + "\n" for p in batch))
            file.flush()
            n += BATCH
            await asyncio.sleep(0.005)


async def consume(url: str, key: str, out: Path) -> None:
    queue = ReliableQueue(connect(url, socket_timeout=2), lease=3)
    backoff = Backoff(f"consumer={key} pop")
    with out.open("a") as file:
        while not STOPPING.is_set():
            try:
                batch = await queue.pop(key, count=50, block=0.5)
                file.write("".join(d.payload.decode() + "\n" for d in batch))
                file.flush()
                await queue.ack(*batch)
            except RETRIED as exc:
                await backoff.failed(exc)
                continue
            backoff.succeeded()


STOPPING = asyncio.Event()


def main(argv: list[str]) -> None:
    configure("info")
    kind, url, key, out, *rest = argv
    actors: dict[str, Callable[[], Awaitable[None]]] = {
        "produce": lambda: produce(url, key, Path(out), rest[0], int(rest[1] if rest[1:] else 0)),
        "consume": lambda: consume(url, key, Path(out)),
    }

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, STOPPING.set)
        await actors[kind]()

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])
