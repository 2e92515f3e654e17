"""A redline worker as a Sidekiq process: the ``processes`` entry, its heartbeat, the counters.

Sidekiq's API and Web UI read (lib/sidekiq/api.rb, launcher.rb):

- ``processes``: set of identities (``host:pid:nonce``); each identity a hash ``info`` (JSON:
  hostname, started_at, pid, tag, concurrency, queues, labels, identity), ``busy``, ``beat``,
  ``quiet``, ``rss`` (KB), ``rtt_us``, with a TTL renewed by every heartbeat;
- ``<identity>:workers``: hash of running jobs (``{"queue", "payload", "run_at"}`` as JSON);
- ``<identity>-signals``: a list the Web UI pushes ``TSTP`` (quiet) and ``TERM`` (stop) onto;
- ``stat:processed``, ``stat:failed`` and the daily ``stat:processed:YYYY-MM-DD`` … (5 years).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.connection import AsyncClient
from redline.jobs.sidekiq.job import PROCESSES

__all__ = ["SidekiqProcess"]

log = logging.getLogger(__name__)

STATS_TTL = 5 * 365 * 86400  # how long the daily counters live (Sidekiq's)
LABELS = ["redline"]


def _rss_kb() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class SidekiqProcess:
    """This process's registration; `processed`/`failed` are added to the counters at each
    `beat` (a SIGKILL loses at most one beat's worth of counts, as with Sidekiq)."""

    queues: Sequence[str]
    concurrency: int
    expire: float = 60.0
    tag: str = ""
    identity: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
    )
    started_at: float = field(default_factory=time.time)
    processed: int = 0
    failed: int = 0
    quiet: bool = False

    def info(self) -> str:
        return json.dumps(
            {
                "hostname": socket.gethostname(),
                "started_at": self.started_at,
                "pid": os.getpid(),
                "tag": self.tag,
                "concurrency": self.concurrency,
                "queues": list(dict.fromkeys(self.queues)),
                "labels": LABELS,
                "identity": self.identity,
            }
        )

    async def beat(self, client: AsyncClient, running: Iterable[tuple[str, bytes, int]]) -> str:
        """Count, register, list the `running` jobs (queue, job, started); returns the signal
        the Web UI left for this process ("" for none)."""
        started = time.monotonic()
        await client.ping()
        rtt = int((time.monotonic() - started) * 1e6)
        ttl = max(1, round(self.expire))
        jobs = list(running)
        with self._counts_taken() as (processed, failed):
            tx = client.pipeline(transaction=True)
            _add_counts(tx, processed, failed)
            workers = f"{self.identity}:workers"
            tx.unlink(workers)
            if jobs:
                tx.hset(workers, mapping={str(n): _work(*job) for n, job in enumerate(jobs)})
                tx.expire(workers, ttl)
            tx.sadd(PROCESSES, self.identity)
            tx.hset(self.identity, mapping=self._fields(len(jobs), rtt))
            tx.expire(self.identity, ttl)
            tx.rpop(f"{self.identity}-signals")
            signal = (await tx.execute())[-1]
        return signal.decode() if isinstance(signal, bytes) else ""

    def _fields(self, busy: int, rtt: int) -> dict[Any, str | int]:
        return {
            "info": self.info(),
            "busy": busy,
            "beat": repr(time.time()),
            "quiet": str(self.quiet).lower(),
            "rss": _rss_kb(),
            "rtt_us": rtt,
        }

    async def add_counts(self, client: AsyncClient) -> None:
        """Add the counts not yet added (at stop)."""
        with self._counts_taken() as (processed, failed):
            tx = client.pipeline(transaction=True)
            _add_counts(tx, processed, failed)
            await tx.execute()

    @contextlib.contextmanager
    def _counts_taken(self) -> Iterator[tuple[int, int]]:
        """The counts to add, zeroed here; given back when adding them failed."""
        processed, failed, self.processed, self.failed = self.processed, self.failed, 0, 0
        try:
            yield processed, failed
        except BaseException:
            self.processed, self.failed = self.processed + processed, self.failed + failed
            raise

    async def unregister(self, client: AsyncClient) -> None:
        """Leave ``processes`` (a clean stop; a killed process's hash expires instead)."""
        pipe = client.pipeline(transaction=True)
        pipe.srem(PROCESSES, self.identity)
        pipe.unlink(self.identity, f"{self.identity}:workers")
        await pipe.execute()


def _add_counts(tx: Any, processed: int, failed: int) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for name, n in (("processed", processed), ("failed", failed)):
        if n:
            tx.incrby(f"stat:{name}", n)
            tx.incrby(f"stat:{name}:{today}", n)
            tx.expire(f"stat:{name}:{today}", STATS_TTL)


def _work(queue: str, payload: bytes, run_at: int) -> str:
    text = payload.decode("utf-8", "replace")
    return json.dumps({"queue": queue, "payload": text, "run_at": run_at})
