"""vpush under failure, with real processes and real servers: every message once, in order."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.keys import derived
from redline.runtime.lifecycle import ids_key
from redline.runtime.metrics import Value, read_all_sync
from tests.helpers import kill_holding, spawn, stop, wait_for
from tests.servers import ServerProcess

TOTAL = 10_000
OUTAGE = 10.0  # seconds the remote stays down (the figure)
# the waits below allow a slow disk (AOF fsync always) up to 180 s: more than the suite default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def durable_remote(tmp_path: Path) -> Iterator[ServerProcess]:
    """A remote that keeps its data across a kill: AOF, fsync before every reply."""
    data = tmp_path / "remote"
    data.mkdir()
    srv = ServerProcess(config={"appendonly": "yes", "appendfsync": "always"}, data_dir=data)
    yield srv.start()
    srv.close()


def fill(url: str, n: int = TOTAL) -> list[bytes]:
    sent = [f"m{i:05d}".encode() for i in range(n)]
    client = redis.Redis.from_url(url)
    for start in range(0, n, 1000):
        client.lpush("in", *sent[start : start + 1000])
    return sent


def vpush(redis_url: str, remote_url: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    sets = ["in=in", "out=out", f"outRedis={remote_url}", "popTimeout=0.5", "lease=2"]
    sets += ["retryBase=0.05", "retryMax=1", *extra]
    args = [arg for item in sets for arg in ("--set", item)]
    return spawn("vpush", "--redis", redis_url, *args, log=log)


def llen(url: str) -> int:
    try:
        return int(redis.Redis.from_url(url, socket_timeout=5).llen("out"))
    except redis.ConnectionError:
        return -1


def assert_exactly_once(redis_url: str, remote_url: str, sent: list[bytes]) -> None:
    wait_for(lambda: llen(remote_url) >= len(sent), timeout=180, interval=0.2)
    got = redis.Redis.from_url(remote_url).lrange("out", 0, -1)[::-1]
    assert len(got) == len(sent), f"{len(got) - len(sent)} extra messages"
    assert got == sent
    local = redis.Redis.from_url(redis_url)
    assert local.llen("in") == 0
    wait_for(lambda: local.exists(derived("in", "vpush", "transfer")) == 0)


def metrics(redis_url: str, name: str) -> dict[str, Value]:
    """One vpush metric (the namespace defaults to {in}:service)."""
    found = read_all_sync(redis.Redis.from_url(redis_url), derived("in", "service"))
    return found.get(name, {})


def test_remote_stopped_and_restarted_mid_stream(
    redis_url: str, durable_remote: ServerProcess, tmp_path: Path
) -> None:
    remote_url = durable_remote.url
    sent = fill(redis_url)
    proc = vpush(redis_url, remote_url, tmp_path / "vpush.log")
    try:
        wait_for(lambda: llen(remote_url) >= 2000, timeout=120)
        durable_remote.kill()
        began = time.monotonic()
        wait_for(lambda: int(metrics(redis_url, "retries").get("attempt", 0)) >= 3, timeout=30)
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - began)))  # the outage, not a sync
        assert "Connection" in str(metrics(redis_url, "retries")["lastError"])
        durable_remote.start()
        assert_exactly_once(redis_url, remote_url, sent)
    finally:
        assert stop(proc) == 0, (tmp_path / "vpush.log").read_text()[-3000:]
    assert int(metrics(redis_url, "retries")["count"]) >= 3
    assert metrics(redis_url, "retries")["attempt"] == 0


class Cutter(threading.Thread):
    """Watches the remote with MONITOR and cuts the pusher's connection at every `every`-th push."""

    def __init__(self, port: int, every: int) -> None:
        super().__init__(daemon=True)
        self.port, self.every = port, every
        self.cuts = 0
        self.done = threading.Event()

    def run(self) -> None:
        watcher = redis.Redis(port=self.port, socket_timeout=0.5)
        killer = redis.Redis(port=self.port)
        pushes = 0
        with watcher.monitor() as monitor:
            while not self.done.is_set():
                try:
                    seen = monitor.next_command()
                except (redis.TimeoutError, redis.ConnectionError):
                    continue
                if not str(seen.get("command", "")).upper().startswith("EVALSHA"):
                    continue
                pushes += 1
                if pushes % self.every == 0:
                    address = f"{seen['client_address']}:{seen['client_port']}"
                    self.cuts += int(killer.client_kill_filter(_id=None, addr=address) or 0)


def test_remote_connection_cut_at_the_push(
    redis_url: str, second_server: ServerProcess, remote_url: str, tmp_path: Path
) -> None:
    sent = fill(redis_url)
    cutter = Cutter(second_server.port, every=97)
    cutter.start()
    proc = vpush(redis_url, remote_url, tmp_path / "vpush.log")
    try:
        assert_exactly_once(redis_url, remote_url, sent)
    finally:
        cutter.done.set()
        cutter.join(5)
        assert stop(proc) == 0, (tmp_path / "vpush.log").read_text()[-3000:]
    assert cutter.cuts >= 20
    assert int(metrics(redis_url, "retries")["count"]) >= 1
    local = redis.Redis.from_url(redis_url)  # SIGTERM cleaned up: unregistered, lease released
    assert local.llen(ids_key(derived("in", "service"))) == 0
    assert local.exists(derived("in", "vpush", "lease")) == 0


def active_pid(redis_url: str) -> int:
    """The pid in the lifecycle hash of the lease holder (``<ns>:<id>#<token>``)."""
    client = redis.Redis.from_url(redis_url)
    value = client.get(derived("in", "vpush", "lease"))
    assert value is not None
    pid = client.hget(value.decode().rsplit("#", 1)[0], "pid")
    assert pid is not None
    return int(pid)


def registered_pids(redis_url: str) -> set[int]:
    """The pids of the vpush instances listed in the service's ids list."""
    client = redis.Redis.from_url(redis_url)
    ns = derived("in", "service")
    pids = (client.hget(f"{ns}:{i.decode()}", "pid") for i in client.lrange(ids_key(ns), 0, -1))
    found = {int(pid) for pid in pids if pid}
    client.close()
    return found


def in_hand(redis_url: str, pid: int) -> bool:
    """Whether the instance `pid` holds the lease and a transfer not yet finished."""
    client = redis.Redis.from_url(redis_url)
    transfer = client.llen(derived("in", "vpush", "transfer"))
    holder = client.get(derived("in", "vpush", "lease"))
    owner = client.hget(holder.decode().rsplit("#", 1)[0], "pid") if holder else None
    client.close()
    return transfer > 0 and owner == str(pid).encode()


def test_active_killed_mid_transfer_and_a_standby_takes_over(
    redis_url: str, remote_url: str, tmp_path: Path
) -> None:
    sent = fill(redis_url)
    procs = [vpush(redis_url, remote_url, tmp_path / f"vpush{i}.log") for i in range(2)]
    try:
        for i, mark in enumerate((2500, 6000)):
            wait_for(lambda m=mark: llen(remote_url) >= m, timeout=120)
            victim = next(p for p in procs if p.pid == active_pid(redis_url))
            holding = lambda v=victim: in_hand(redis_url, v.pid)  # noqa: E731
            wait_for(lambda v=victim, h=holding: kill_holding(v, h), timeout=60)
            procs.remove(victim)
            procs.append(vpush(redis_url, remote_url, tmp_path / f"vpush-new{i}.log"))
            # registered, so its SIGTERM handler is in place for the stop at the end
            wait_for(lambda: procs[-1].pid in registered_pids(redis_url), timeout=60)
        assert_exactly_once(redis_url, remote_url, sent)
    finally:
        for proc in procs:
            assert stop(proc) == 0
    assert int(metrics(redis_url, "lease")["token"]) >= 3
