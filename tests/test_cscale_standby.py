"""Standby for a real service: a `redline lpush` replica set run by a cscale agent.

The agent starts lpush with ``serviceStandby``, so the standard hooks include the standby gate:
standbys register but move nothing, and one takes over when an active instance is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.keys import derived
from tests import cscale_helpers as ch
from tests.helpers import wait_for

NS, IN, OUT = "t:lp", "t:lp:in", "t:lp:out"
RENEW = 5  # serviceRenew: a standby must take over within this; hashes expire after 60 s
FORWARDERS = derived(derived(IN, "pending"), "instances")  # who holds a pending list


@pytest.fixture
def agents(sredis: redis.Redis) -> Iterator[list[subprocess.Popen[str]]]:
    with ch.agents(sredis) as started:
        yield started


def test_lpush_standbys_idle_until_an_active_instance_dies(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[subprocess.Popen[str]]
) -> None:
    sets = [f"in={IN}", f"out={OUT}", "popTimeout=0.5", f"serviceRenew={RENEW}"]
    spec = {"service": "lpush", "sets": [*sets, "serviceExpire=60"], "replicas": 2, "standby": 2}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"services": {NS: spec}}))
    agents.append(ch.agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    want = ["active", "active", "standby", "standby"]
    wait_for(lambda: ch.roles(sredis, NS) == want, timeout=60)
    sredis.lpush(IN, *(f"m{n}" for n in range(100)))
    wait_for(lambda: sredis.llen(OUT) == 100)
    wait_for(lambda: all("calls" in i for i in ch.live(sredis, NS) if i["role"] == "active"))
    standbys = [i for i in ch.live(sredis, NS) if i["role"] == "standby"]
    actives = {i["id"] for i in ch.live(sredis, NS) if i["role"] == "active"}
    # standbys moved nothing: no pending list, no calls counted in their lifecycle hash
    assert {k.decode() for k in sredis.hkeys(FORWARDERS)} == actives
    assert all("calls" not in i for i in standbys)

    victim = next(i for i in ch.live(sredis, NS) if i["role"] == "active")
    killed = time.monotonic()
    os.kill(int(victim["pid"]), signal.SIGKILL)
    waiting = {i["id"] for i in standbys}
    taken = wait_for(
        lambda: [i for i in ch.live(sredis, NS) if i["id"] in waiting and i["role"] == "active"],
        timeout=RENEW,  # within one renewal period (expiry, 60 s, plays no part)
    )
    assert len(taken) == 1 and time.monotonic() - killed < RENEW
    sredis.lpush(IN, *(f"m{n}" for n in range(100, 200)))
    wait_for(lambda: sredis.llen(OUT) == 200, timeout=30)  # nothing lost
    assert sorted(sredis.lrange(OUT, 0, -1)) == sorted(f"m{n}".encode() for n in range(200))
    wait_for(lambda: ch.roles(sredis, NS) == want, timeout=60)  # a new standby, not an active
    assert taken[0]["id"] in {k.decode() for k in sredis.hkeys(FORWARDERS)}
