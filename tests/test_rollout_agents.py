"""Rollouts by real cscale agents over real worker processes (`tests.scale_worker`), under a
steady stream of work: a good revision replaces every replica one by one, a faulty one rolls
itself back, and a rollout survives the SIGKILL of one of two agents.

The workers renew every second and their hashes expire after 60 s, so an instance that
vanishes sooner was stopped by an agent. A `Sampler` counts the live instances every 20 ms.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import cscale_helpers as ch
from tests.helpers import invoke, run, wait_for

NS, WORK, DONE, FAILED = "t:roll", "t:roll:work", "t:roll:done", "t:roll:failed"
FAST = ["popTimeout=0.5", "serviceRenew=1", "serviceExpire=60", f"queue={WORK}", f"out={DONE}"]
STATE = "{t:roll}:cscale:rollout"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def write_plan(path: Path, bake: float, **extra: Any) -> Path:
    sets = [*FAST, f"failed={FAILED}"]
    spec = {"argv": [sys.executable, "-m", "tests.scale_worker"], "sets": sets, **extra}
    spec |= {"rollout": {"bake": bake}, "health": {"threshold": 0.1, "minCount": 10}}
    path.write_text(json.dumps({"services": {NS: spec}}))
    return path


class Producer(threading.Thread):
    """Pushes one numbered item every `every` seconds until `done` is set; `sent` counts."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.client, self.every = redis.Redis.from_url(url), every
        self.sent, self.done = 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.client.lpush(WORK, self.sent)
            self.sent += 1
            time.sleep(self.every)

    def finish(self, client: redis.Redis) -> None:
        """Stop producing; wait until every item came out (done or failed): nothing lost."""
        self.done.set()
        self.join()
        wait_for(lambda: client.llen(DONE) + client.llen(FAILED) == self.sent, timeout=30)
        handled = client.lrange(DONE, 0, -1) + client.lrange(FAILED, 0, -1)
        assert sorted(int(i) for i in handled) == list(range(self.sent))


@pytest.fixture
def agents(sredis: redis.Redis) -> Iterator[list[Any]]:
    with ch.agents(sredis) as started:
        yield started


def revisions(client: redis.Redis) -> list[str]:
    return sorted(inst.get("revision", "0") for inst in ch.live(client, NS))


def deploy(url: str, *args: str) -> None:
    result = run("deploy", NS, *args, "--redis", url)
    assert result.returncode == 0, result.stderr


def rolled(client: redis.Redis, state: str, revision: str = "1") -> bool:
    return client.hmget(STATE, "state", "revision") == [state.encode(), revision.encode()]


def test_a_good_revision_replaces_every_replica_one_by_one(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json", bake=1, replicas=3)
    agents.append(ch.agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    before = {inst["id"] for inst in ch.settle(sredis, NS, 3)}
    producer, sampler = Producer(redis_url), ch.Sampler(redis_url, NS)
    producer.start()
    sampler.start()
    sampler.phase = "rollout"
    deploy(redis_url, "--set", "work=0.001", "--version", "v2")
    wait_for(lambda: rolled(sredis, "done"), timeout=90)
    sampler.done.set()
    sampler.join()
    producer.finish(sredis)
    assert revisions(sredis) == ["1", "1", "1"]
    assert not before & {inst["id"] for inst in ch.live(sredis, NS)}  # all replaced
    counts = sampler.counts("rollout")
    assert min(counts) >= 3 and max(counts) <= 4  # never below desired, at most one surge
    assert sredis.lrange("{t:roll}:cscale:good", 0, -1) == [b"1"]
    assert sredis.llen(FAILED) == 0
    assert any("rollout of revision 1 (v2) complete" in e for e in ch.events(sredis))
    wide = {"COLUMNS": "250"}  # no wrapped cells
    status = invoke("status", "--redis", redis_url, env=wide).stdout
    assert "1 (v2): r1=3" in status and "rollout of revision 1 (v2) complete" in status
    listing = invoke("services", "--redis", redis_url, env=wide).stdout
    rows = [[cell.strip() for cell in line.split("│")] for line in listing.splitlines()]
    assert [row[9] for row in rows if len(row) > 9 and row[1] == NS] == ["1", "1", "1"]


def test_a_faulty_revision_rolls_itself_back_within_its_bake(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json", bake=30, replicas=2)
    agents.append(ch.agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    before = {inst["id"] for inst in ch.settle(sredis, NS, 2)}
    producer = Producer(redis_url)
    producer.start()
    deploy(redis_url, "--set", "failEvery=2", "--version", "bad")  # fails half its items
    wait_for(lambda: rolled(sredis, "rolled back"), timeout=60)
    assert sredis.hget("{t:roll}:cscale:spec", "revision") == b"0"
    wait_for(lambda: revisions(sredis) == ["0", "0"], timeout=30)  # the bad replica is gone
    assert {inst["id"] for inst in ch.live(sredis, NS)} == before  # no old one was stopped
    failed = sredis.llen(FAILED)
    producer.finish(sredis)
    assert sredis.llen(FAILED) == failed  # nothing fails once it is gone
    # the judge needs 10 calls of the new revision: at least 5 failed; the bake (30 s, at
    # 50 items/s shared by three replicas) would have allowed hundreds
    print(f"items failed by the faulty revision before it was rolled back: {failed}")
    assert 5 <= failed < 100
    reason = sredis.hget(STATE, "msg").decode()
    assert "rolled back to revision 0: errors" in reason and "old revision 0/" in reason
    assert any("rolled back to revision 0: errors" in e for e in ch.events(sredis))
    status = invoke("status", "--redis", redis_url, env={"COLUMNS": "250"}).stdout
    assert "rolled back" in status and "errors" in status and "0: r0=2" in status


def test_a_rollout_survives_the_sigkill_of_one_of_two_agents(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json", bake=1)
    ch.scale(sredis, NS, 0)
    alpha, beta = (ch.agent(plan, h, redis_url, tmp_path / f"{h}.log") for h in ("alpha", "beta"))
    agents += [alpha, beta]
    wait_for(lambda: sredis.zcard("redline:cscale:agents") == 2, timeout=30)
    ch.scale(sredis, NS, 4)
    ch.settle(sredis, NS, 4)
    producer, sampler = Producer(redis_url), ch.Sampler(redis_url, NS)
    producer.start()
    sampler.start()
    try:
        sampler.phase = "rollout"
        deploy(redis_url, "--set", "work=0.001")
        wait_for(lambda: revisions(sredis).count("1") >= 2, timeout=60)  # mid-rollout
        assert "0" in revisions(sredis)
        # The agent that supervises replicas now is killed (which one got them is a race).
        supervising = {inst.get("agent") for inst in ch.live(sredis, NS)}
        victim, survivor = ("alpha", "beta") if "alpha" in supervising else ("beta", "alpha")
        assert victim in supervising
        killed = {"alpha": alpha, "beta": beta}[victim]
        killed.kill()
        killed.wait()
        wait_for(lambda: rolled(sredis, "done"), timeout=90)  # the survivor finishes it
    finally:  # the threads stop even when a step above fails (they would outlive the server)
        for thread in (sampler, producer):
            thread.done.set()
            thread.join()
    producer.finish(sredis)
    assert revisions(sredis) == ["1"] * 4
    counts = sampler.counts("rollout")
    assert min(counts) >= 4 and max(counts) <= 5  # desired 4, surge 1, across both agents
    assert {inst.get("agent") for inst in ch.live(sredis, NS)} >= {survivor}


def test_a_forwarder_rolls_out_like_any_program(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    sets = [f"in={WORK}", f"out={DONE}", "popTimeout=0.5", "serviceRenew=1", "serviceExpire=60"]
    spec = {"service": "lpush", "sets": sets, "replicas": 2, "rollout": {"bake": 0.5}}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"services": {NS: spec}}))
    agents.append(ch.agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    ch.settle(sredis, NS, 2)
    producer = Producer(redis_url)
    producer.start()
    deploy(redis_url, "--set", "popTimeout=0.4", "--version", "v2")
    wait_for(lambda: rolled(sredis, "done"), timeout=60)
    producer.finish(sredis)  # every message forwarded exactly once, none lost
    assert revisions(sredis) == ["1", "1"]
    assert {inst["service"] for inst in ch.live(sredis, NS)} == {"lpush"}


def test_a_revision_whose_replicas_cannot_start_rolls_itself_back(
    tmp_path: Path, redis_url: str, sredis: redis.Redis, agents: list[Any]
) -> None:
    plan = write_plan(tmp_path / "plan.json", bake=1, replicas=2)
    agents.append(ch.agent(plan, "alpha", redis_url, tmp_path / "alpha.log"))
    before = {inst["id"] for inst in ch.settle(sredis, NS, 2)}
    deploy(redis_url, "--set", "work=oops")  # exits with a config error before registering
    wait_for(lambda: rolled(sredis, "rolled back"), timeout=60)
    assert sredis.hget("{t:roll}:cscale:spec", "revision") == b"0"
    reason = sredis.hget(STATE, "msg").decode()
    assert "3 of its instances failed" in reason and "exited code=2" in reason  # maxFailures
    assert {inst["id"] for inst in ch.live(sredis, NS)} == before  # the old ones kept serving
