"""mpush as a real process: the seed's manual walkthrough, replicas, and SIGKILL chaos."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from redline.runtime.lifecycle import ids_key, instance_key
from redline.services.pending import registry_key
from tests.helpers import park_and_kill, spawn, stop, wait_for

NS = "demo:mpush"
IN, PENDING, OUT = "demo:mpush:in", "demo:mpush:pending", ["demo:mpush:out0", "demo:mpush:out1"]


def write_config(tmp_path: Path, url: str, **fields: object) -> Path:
    path = tmp_path / "mpush.json"
    config = {"redis": url, "in": IN, "pending": PENDING, "popTimeout": 2, "out": OUT}
    path.write_text(json.dumps({**config, "serviceNamespace": NS, **fields}))
    return path


def lpush_one(url: str, sredis: redis.Redis, message: str) -> None:
    """The seed's `redis-cli lpush demo:mpush:in one`, with the real redis-cli when installed."""
    if shutil.which("redis-cli") is None:
        sredis.lpush(IN, message)
        return
    port, db = url.rsplit(":", 1)[1].split("/")
    subprocess.run(["redis-cli", "-p", port, "-n", db, "lpush", IN, message], check=True)


def latest_instance(sredis: redis.Redis) -> str:
    """`redis-cli lrange demo:mpush:ids 0 0`: the newest registered id."""
    ids = wait_for(lambda: sredis.lrange(ids_key(NS), 0, 0))
    return str(ids[0].decode())


def test_the_seeds_walkthrough(tmp_path: Path, redis_url: str, sredis: redis.Redis) -> None:
    config = write_config(tmp_path, redis_url)
    proc = spawn("mpush", "--config", str(config), log=tmp_path / "mpush.log")
    try:
        ident = latest_instance(sredis)
        lpush_one(redis_url, sredis, "one")
        for out in OUT:
            assert wait_for(lambda o=out: sredis.lrange(o, 0, -1)) == [b"one"]
        # kill by the pid the instance registered, as the seed does
        pid = int(sredis.hget(instance_key(NS, ident), "pid") or 0)
        assert pid == proc.pid
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        stop(proc)
    assert not sredis.exists(instance_key(NS, ident))
    assert ident.encode() not in sredis.lrange(ids_key(NS), 0, -1)
    log = (tmp_path / "mpush.log").read_text()
    assert "'in': 'demo:mpush:in'" in log and "'out': ['demo:mpush:out0'" in log


def test_deleting_the_hash_stops_an_instance_started_with_props_file(
    tmp_path: Path, redis_url: str, sredis: redis.Redis
) -> None:
    config = write_config(tmp_path, redis_url)
    proc = spawn("mpush", env={"propsFile": str(config)}, log=tmp_path / "mpush.log")
    try:
        ident = latest_instance(sredis)
        sredis.delete(instance_key(NS, ident))
        assert proc.wait(20) == 0
    finally:
        stop(proc)
    assert "was deleted" in (tmp_path / "mpush.log").read_text()
    assert ident.encode() not in sredis.lrange(ids_key(NS), 0, -1)


def test_replicas_share_the_work_and_each_output_gets_everything_once(
    tmp_path: Path, redis_url: str, sredis: redis.Redis
) -> None:
    config = write_config(tmp_path, redis_url, batch=10)
    procs = [spawn("mpush", "--config", str(config), log=tmp_path / "mpush.log") for _ in range(3)]
    try:
        wait_for(lambda: sredis.llen(ids_key(NS)) == 3, timeout=30)
        messages = [f"m{i}".encode() for i in range(3000)]
        for start in range(0, len(messages), 100):
            sredis.lpush(IN, *messages[start : start + 100])
        wait_for(lambda: all(sredis.llen(o) == len(messages) for o in OUT), timeout=60)
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0, 0, 0]
    for out in OUT:
        assert sorted(sredis.lrange(out, 0, -1)) == sorted(messages)
    assert sredis.llen(ids_key(NS)) == 0 and not sredis.exists(registry_key(PENDING))


def _registered(sredis: redis.Redis, procs: list[subprocess.Popen[str]]) -> dict[str, Any]:
    """Instance id → process, for those of `procs` that have registered."""
    pids = {p.pid: p for p in procs}
    found = {}
    for raw in sredis.lrange(ids_key(NS), 0, -1):
        pid = int(sredis.hget(instance_key(NS, raw.decode()), "pid") or 0)
        if pid in pids:
            found[raw.decode()] = pids[pid]
    return found


@pytest.mark.slow
def test_sigkill_chaos_loses_nothing_and_pushes_nothing_twice(
    tmp_path: Path, redis_url: str, sredis: redis.Redis
) -> None:
    config = write_config(
        tmp_path, redis_url, batch=2, popTimeout=1, serviceExpire=2, serviceRenew=0.5
    )
    log = tmp_path / "mpush.log"
    messages = [f"m{i:05d}".encode() for i in range(20_000)]
    procs = [spawn("mpush", "--config", str(config), log=log) for _ in range(2)]
    held: dict[str, int] = {}  # victim's instance id → messages parked in its pending list
    probes: list[bytes] = []
    try:
        for part in range(0, len(messages), 4000):  # bursts and gaps, then a kill
            for start in range(part, part + 4000, 200):
                sredis.lpush(IN, *messages[start : start + 200])
                time.sleep(0.05)  # bursts and gaps: both the batch path and the BLMOVE path run
            killed = None
            while killed is None:  # a kill with a message parked, never at an idle moment
                targets = wait_for(lambda: len(got := _registered(sredis, procs)) == 2 and got, 60)
                wait_for(lambda: sredis.llen(IN) == 0, 60)
                probes.append(f"p{len(probes):05d}".encode())
                killed = park_and_kill(sredis, IN, PENDING, targets, probes[-1])
            ident, held[ident] = killed
            procs.remove(targets[ident])
            procs.append(spawn("mpush", "--config", str(config), log=log))
        # dead instances' pending lists come back once their lifecycle hash expires (2 s)
        sent = messages + probes
        wait_for(lambda: all(sredis.llen(o) == len(sent) for o in OUT), timeout=60)
    finally:
        for proc in procs:
            stop(proc)
    assert all(held.values()) and len(held) == 5
    for out in OUT:
        got = sredis.lrange(out, 0, -1)
        assert len(got) == len(set(got)) == len(sent) and set(got) == set(sent)
    assert sredis.llen(IN) == 0
    # the survivors gave back what each victim held, once
    found = re.findall(r"recovered=(\d+) from dead instance=(\w+)", log.read_text())
    assert sorted((ident, int(n)) for n, ident in found) == sorted(held.items())
