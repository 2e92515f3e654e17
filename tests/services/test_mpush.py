"""mpush as a real process: the seed's manual walkthrough, replicas, and SIGKILL chaos."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from redline.runtime.lifecycle import ids_key, instance_key
from redline.services.pending import registry_key
from tests.helpers import spawn, stop, wait_for

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


@pytest.mark.slow
def test_sigkill_chaos_loses_nothing_and_pushes_nothing_twice(
    tmp_path: Path, redis_url: str, sredis: redis.Redis
) -> None:
    config = write_config(
        tmp_path, redis_url, batch=2, popTimeout=1, serviceExpire=2, serviceRenew=0.5
    )
    log = tmp_path / "mpush.log"
    messages = [f"m{i:05d}".encode() for i in range(20_000)]
    rng = random.Random(4)
    procs = [spawn("mpush", "--config", str(config), log=log) for _ in range(2)]
    busy_kills, next_kill = 0, time.monotonic() + 1
    try:
        for start in range(0, len(messages), 200):
            sredis.lpush(IN, *messages[start : start + 200])
            if time.monotonic() > next_kill:  # a replica dies mid-burst, while it works
                victim = procs.pop(rng.randrange(len(procs)))
                busy_kills += sredis.llen(IN) > 0
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                procs.append(spawn("mpush", "--config", str(config), log=log))
                next_kill = time.monotonic() + rng.uniform(0.3, 0.9)
            time.sleep(0.05)  # bursts and gaps: both the batch path and the BLMOVE path run
        # dead instances' pending lists come back once their lifecycle hash expires (2 s)
        wait_for(lambda: all(sredis.llen(o) == len(messages) for o in OUT), timeout=60)
    finally:
        for proc in procs:
            stop(proc)
    assert busy_kills >= 3
    for out in OUT:
        got = sredis.lrange(out, 0, -1)
        assert len(got) == len(set(got)) == len(messages) and set(got) == set(messages)
    assert sredis.llen(IN) == 0
