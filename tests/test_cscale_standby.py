"""Standby for a real service: a `redline lpush` replica set run by a cscale agent.

The agent starts lpush with ``serviceStandby``, so the standard hooks include the standby gate:
standbys register but move nothing, and one takes over when an active instance is SIGKILLed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.keys import derived
from tests import cscale_helpers as ch
from tests.helpers import park_and_kill, wait_for

NS, IN, OUT = "t:lp", "t:lp:in", "t:lp:out"
RENEW = 5  # serviceRenew; hashes expire after 60 s
PENDING = derived(IN, "pending")
FORWARDERS = derived(PENDING, "instances")  # who holds a pending list


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

    # an active instance is killed with a message in hand (parked in its pending list)
    probes: list[str] = []
    killed = None
    while killed is None:
        wait_for(lambda: sredis.llen(IN) == 0)
        probes.append(f"p{len(probes)}")
        targets = {i["id"]: int(i["pid"]) for i in ch.live(sredis, NS) if i["role"] == "active"}
        killed = park_and_kill(sredis, IN, PENDING, targets, probes[-1].encode())
    victim, held = killed
    waiting = {i["id"] for i in standbys}
    taken = wait_for(
        lambda: [i for i in ch.live(sredis, NS) if i["id"] in waiting and i["role"] == "active"],
        timeout=50,  # the victim's hash would expire only 55-60 s after the kill
    )
    # the agent saw the SIGKILL and freed the slot (not the hash's expiry)
    death = f"{NS}:{victim} pid {targets[victim]} died code=-9"
    assert len(taken) == 1 and any(death in event for event in ch.events(sredis))
    sredis.lpush(IN, *(f"m{n}" for n in range(100, 200)))
    sent = [f"m{n}".encode() for n in range(200)] + [p.encode() for p in probes]
    wait_for(lambda: sredis.llen(OUT) == len(sent), timeout=30)  # nothing lost
    assert sorted(sredis.lrange(OUT, 0, -1)) == sorted(sent)
    assert held == 1  # and the message the victim held came back
    wait_for(lambda: ch.roles(sredis, NS) == want, timeout=60)  # a new standby, not an active
    assert taken[0]["id"] in {k.decode() for k in sredis.hkeys(FORWARDERS)}
