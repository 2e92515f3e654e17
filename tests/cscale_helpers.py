"""What the cscale tests share: running agents as real processes and reading instances the way
an operator would (the ids list, then each hash)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from redline.scaling.cscale import AGENTS_KEY
from tests.helpers import spawn, stop, wait_for


def live(client: redis.Redis, ns: str) -> list[dict[str, str]]:
    """The live instances of `ns`: their hash fields, plus ``id``."""
    found = []
    for ident in client.lrange(f"{ns}:ids", 0, -1):
        fields = client.hgetall(f"{ns}:{ident.decode()}")
        if b"pid" in fields:
            found.append(
                {k.decode(): v.decode() for k, v in fields.items()} | {"id": ident.decode()}
            )
    return found


def roles(client: redis.Redis, ns: str) -> list[str]:
    """The sorted roles of the live instances of `ns`."""
    return sorted(inst.get("role", "") for inst in live(client, ns))


def settle(
    client: redis.Redis, ns: str, replicas: int, timeout: float = 60
) -> list[dict[str, str]]:
    """Wait until exactly `replicas` instances of `ns` live; return them."""
    return wait_for(
        lambda: (found := live(client, ns)) and len(found) == replicas and found, timeout
    )


def events(client: redis.Redis) -> list[str]:
    """The messages of the agents' recent events, newest first."""
    return [json.loads(e)["msg"] for e in client.lrange("redline:cscale:events", 0, -1)]


def scale(client: redis.Redis, ns: str, replicas: int) -> None:
    """What `redline scale NS N` does (tested on its own in test_cscale), without a process."""
    client.hset("redline:scale", ns, replicas)


def agent(plan: Path, host: str, url: str, log: Path) -> subprocess.Popen[str]:
    """A `redline cscale` agent as host `host`, deciding every 0.2 s."""
    args = ("cscale", str(plan), "--host", host, "--redis", url, "--interval", "0.2")
    return spawn(*args, "--stop-grace", "10", log=log)


@contextmanager
def agents(client: redis.Redis) -> Iterator[list[subprocess.Popen[str]]]:
    """Agents the caller starts; at the end: scale every service to 0 and stop the agents all
    at once (each stops its own instances cleanly), then kill any instance left by an agent
    that was killed."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        namespaces = [ns.decode() for ns in client.hkeys("redline:scale")]
        for ns in namespaces:
            client.hset("redline:scale", ns, 0)
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            stop(proc)
        for inst in (inst for ns in namespaces for inst in live(client, ns)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(inst["pid"]), signal.SIGKILL)


def full_round(client: redis.Redis) -> None:
    """Wait until every agent has completed a whole round begun after now: it has seen the
    instances as they are now, and its decisions on them are recorded. (An agent notes the
    time in ``redline:cscale:agents`` as each round begins, and runs one round at a time.)"""
    for _ in range(2):  # a round begun after now, then the next: the first one is over
        wait_for(_began_after(client, time.time()), timeout=60)


def _began_after(client: redis.Redis, since: float) -> Callable[[], bool]:
    """Whether every agent has begun a round after `since` (for `wait_for`)."""
    return lambda: all(t > since for _, t in client.zrange(AGENTS_KEY, 0, -1, withscores=True))


# The live instances of a namespace (KEYS[1] its ids list, ARGV[1] the namespace), counted in
# one script: `live` reads the list and then each hash, so a count it makes spans the changes
# made meanwhile (an instance that started after the list was read is missed while one that
# stopped is not counted either: fewer than ever lived at once).
COUNT_LIVE = """
local n = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('HEXISTS', ARGV[1] .. ':' .. id, 'pid')
end
return n
"""


class Sampler(threading.Thread):
    """Counts the live instances of `ns` continuously; `samples` holds (phase, count). A count
    is kept only when `phase` was the same before and after it was taken, so a sample belongs
    wholly to its phase. How many samples a phase gets depends on the scheduler (a short
    phase may get none under load)."""

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(daemon=True)
        self.client, self.ns = redis.Redis.from_url(url), ns
        self.phase, self.samples, self.done = "", list[tuple[str, int]](), threading.Event()

    def run(self) -> None:
        count = self.client.register_script(COUNT_LIVE)
        while not self.done.is_set():
            phase = self.phase
            found = int(count(keys=[f"{self.ns}:ids"], args=[self.ns]))
            if self.phase == phase:
                self.samples.append((phase, found))
            time.sleep(0.02)

    def counts(self, phase: str) -> list[int]:
        return [count for name, count in self.samples if name == phase]
