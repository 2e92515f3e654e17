"""cscale agents as real processes converging real workers; SIGKILL of workers and agents.

The workers renew every second and their hashes expire after 60 s: an instance that vanishes
sooner was removed by an agent, not by expiry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import cscale_helpers as ch
from tests.helpers import wait_for

NS = "t:worker"
FAST = ["popTimeout=0.5", "serviceRenew=1", "serviceExpire=60", "queue=t:work", "out=t:done"]


def write_plan(path: Path, **extra: Any) -> Path:
    spec = {"argv": [sys.executable, "-m", "tests.scale_worker"], "sets": FAST, **extra}
    path.write_text(json.dumps({"services": {NS: spec}}))
    return path


def live(client: redis.Redis) -> list[dict[str, str]]:
    return ch.live(client, NS)


def agent(plan: Path, host: str, url: str, log: Path) -> subprocess.Popen[str]:
    return ch.agent(plan, host, url, log)


@pytest.fixture
def agents(sredis: redis.Redis) -> Iterator[list[subprocess.Popen[str]]]:
    with ch.agents(sredis) as started:
        yield started


def died(client: redis.Redis, inst: dict[str, str]) -> bool:
    """Whether an agent recorded that `inst` died of a SIGKILL (and deleted its hash)."""
    text = f"{NS}:{inst['id']} pid {inst['pid']} died code=-9"
    return any(text in event for event in ch.events(client))


def scale(client: redis.Redis, replicas: int) -> None:
    ch.scale(client, NS, replicas)


def settle(client: redis.Redis, replicas: int, timeout: float = 60) -> list[dict[str, str]]:
    return ch.settle(client, NS, replicas, timeout)


def test_two_agents_converge_without_overshoot(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    """Scaled 0 -> 5 -> 2 -> 0 by two agents. What the claims under the service's lease
    guarantee is that between them the agents start exactly the shortfall and stop exactly the
    surplus, however their rounds interleave: the events they record say so. The sampled live
    counts (what a sampler happened to see, fewer samples the busier the machine) never exceed
    the target either, and once a target is reached each agent runs a whole round on it and
    changes nothing. (A start gets 120 s to register, so that no start is killed as late.)"""
    plan = write_plan(tmp_path / "plan.json", startTimeout=120)
    scale(sredis, 0)
    agents += [agent(plan, h, redis_url, tmp_path / f"{h}.log") for h in ("alpha", "beta")]
    wait_for(lambda: sredis.zcard("redline:cscale:agents") == 2, timeout=60)
    sampler = ch.Sampler(redis_url, NS)
    sampler.start()
    for target in (5, 2, 0):
        sampler.phase = f"to {target}"
        scale(sredis, target)
        if target:
            settle(sredis, target)
        else:
            wait_for(lambda: not live(sredis), timeout=60)
        sampler.phase = f"at {target}"
        ch.full_round(sredis)  # both agents have seen the target reached, and acted on it
        assert len(live(sredis)) == target
        if target == 5:  # both hosts took part
            assert {inst.get("agent") for inst in live(sredis)} == {"alpha", "beta"}
    sampler.done.set()
    sampler.join()
    limits = {"to 5": 5, "to 2": 5, "to 0": 2}  # the target, or the count it came down from
    for phase, count in sampler.samples:
        if phase in limits:
            assert count <= limits[phase], (phase, count)
        elif phase.startswith("at "):
            assert count == int(phase[3:]), (phase, count)
    messages = ch.events(sredis)
    replaced = ("not registered in time", "before registering", "died")
    assert not [m for m in messages if any(what in m for what in replaced)]
    started = [int(m.split()[1]) for m in messages if m.startswith("starting ")]
    stopped = [m.split()[1].split(",") for m in messages if m.startswith("stopping ")]
    assert sum(started) == 5  # the shortfall, started once
    assert sum(map(len, stopped)) == len({key for keys in stopped for key in keys}) == 5


def test_a_killed_worker_is_replaced_by_its_agent(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json", replicas=2)
    agents.append(agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    victim = settle(sredis, 2)[0]
    os.kill(int(victim["pid"]), signal.SIGKILL)
    # serviceExpire is 60 s (renewed every second): the hash can only vanish within 50 s
    # because the agent deleted it, as its event says.
    after = wait_for(
        lambda: (
            (found := live(sredis))
            and len(found) == 2
            and victim["id"] not in {i["id"] for i in found}
            and found
        ),
        timeout=50,
    )
    assert victim["pid"] not in {inst["pid"] for inst in after}
    assert died(sredis, victim)


def test_killing_one_agent_leaves_the_other_converging(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json")
    scale(sredis, 0)
    hosts = {h: agent(plan, h, redis_url, tmp_path / f"{h}.log") for h in ("alpha", "beta")}
    agents += hosts.values()
    wait_for(lambda: sredis.zcard("redline:cscale:agents") == 2, timeout=30)
    scale(sredis, 4)
    settle(sredis, 4)
    # the victim is an agent that supervises instances (which one starts them is not fixed);
    # an instance registers itself, and its agent writes its name into its hash a round later
    victim = wait_for(
        lambda: next((i.get("agent") for i in live(sredis) if i.get("agent") in hosts), None)
    )
    survivor = next(h for h in hosts if h != victim)
    hosts[victim].kill()
    hosts[victim].wait()
    scale(sredis, 1)
    settle(sredis, 1)
    scale(sredis, 3)
    settle(sredis, 3)
    wait_for(lambda: sum(1 for inst in live(sredis) if inst.get("agent") == survivor) >= 2)
    assert len(live(sredis)) == 3


def test_a_standby_takes_over_when_the_active_instance_dies(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json", replicas=1, standby=1)
    agents.append(agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    roles = lambda: ch.roles(sredis, NS)  # noqa: E731
    wait_for(lambda: roles() == ["active", "standby"], timeout=30)
    active = next(inst for inst in live(sredis) if inst["role"] == "active")
    standby = next(inst for inst in live(sredis) if inst["role"] == "standby")
    sredis.lpush("t:work", *range(5))
    wait_for(lambda: sredis.llen("t:done") == 5)
    os.kill(int(active["pid"]), signal.SIGKILL)
    # the standby, not a new start, becomes active (serviceExpire 60 s: within 50 s only the
    # agent's clean-up of the dead instance frees its slot, as its event says)
    wait_for(lambda: sredis.hget(f"{NS}:{standby['id']}", "role") == b"active", timeout=50)
    assert died(sredis, active)
    sredis.lpush("t:work", *range(5, 10))
    wait_for(lambda: sredis.llen("t:done") == 10)
    wait_for(lambda: roles() == ["active", "standby"], timeout=30)  # a new standby
    assert sredis.zrange("{t:worker}:cscale:active", 0, -1) == [standby["id"].encode()]


def test_autoscaling_follows_a_burst_up_and_back_down_without_flapping(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    policy = {"queue": "t:work", "perReplica": 10, "min": 1, "max": 4}
    policy |= {"interval": 0.3, "downAfter": 1}
    slow = [*FAST, "work=0.05"]  # 20 items/s per replica: one replica alone would take 10 s
    plan = write_plan(tmp_path / "plan.json", replicas=1, autoscale=policy, sets=slow)
    agents += [agent(plan, h, redis_url, tmp_path / f"{h}.log") for h in ("alpha", "beta")]
    settle(sredis, 1)
    history: list[int] = []

    def desired() -> int:
        value = int(sredis.hget("redline:scale", NS) or 0)
        if not history or history[-1] != value:
            history.append(value)
        return value

    sredis.lpush("t:work", *range(200))
    wait_for(lambda: desired() == 4, timeout=30)
    wait_for(lambda: sredis.llen("t:done") == 200 and desired() == 1, timeout=40)
    settle(sredis, 1)
    peak = history.index(4)
    assert history[: peak + 1] == sorted(history[: peak + 1])  # only up, to the max
    assert history[peak:] == [4, 3, 2, 1]  # then down one step at a time, never back up
    assert any("autoscale 1 -> 4" in e and "backlog=" in e for e in ch.events(sredis))
