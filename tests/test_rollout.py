"""Rollouts' pieces on their own: the rule (`plan`, `judge`), the spec keys and their scripts,
the `deploy` and `rollback` commands."""

from __future__ import annotations

import pytest
import redis

from redline.config import ServiceConfig
from redline.connection import AsyncClient
from redline.runtime import assemble
from redline.scaling.cscale import SPECS_KEY
from redline.scaling.health import HealthPolicy
from redline.scaling.registry import Instance
from redline.scaling.rollout import (
    Revision,
    RolloutPolicy,
    View,
    deploy,
    desired_revision,
    good_revisions,
    judge,
    mark_good,
    merge_sets,
    plan,
    read_revision,
    revert,
    rollback,
    rollout_state,
)
from redline.scripting import scripts
from tests.helpers import invoke, run

HEALTH = HealthPolicy(threshold=0.1, minCount=10)
POLICY = RolloutPolicy(bake=10)
NOW = 1000.0


def inst(ident: int, revision: int, age: float = 100, **counts: int) -> Instance:
    fields = {"revision": str(revision), **{k: str(v) for k, v in counts.items()}}
    return Instance("ns", str(ident), "h", ident, int(NOW - age), 0, fields=fields)


def view(live: list[Instance], pending: int = 0, target: int = 3, proven: bool = False) -> View:
    return View(live, pending, target, 2, proven, NOW, POLICY, HEALTH)


def test_a_rollout_surges_one_then_waits_for_the_bake() -> None:
    old = [inst(1, 1), inst(2, 1), inst(3, 1)]
    first = plan(view(old))
    assert (first.start, first.stop) == (1, [])
    assert plan(view(old, pending=1)).start == 0  # claimed: wait for it to register
    baking = [*old, inst(4, 2, age=5)]
    assert (plan(view(baking)).start, plan(view(baking)).stop) == (0, [])


def test_a_baked_replica_lets_one_old_go_and_the_next_start() -> None:
    live = [inst(1, 1), inst(2, 1, age=50), inst(3, 1), inst(4, 2, age=11)]
    step = plan(view(live))
    assert [i.id for i in step.stop] == ["1"]  # the oldest old one
    assert step.start == 1  # never below 3, never above 3 + 1
    last = plan(view([inst(3, 1), inst(4, 2, age=30), inst(5, 2, age=30), inst(6, 2, age=11)]))
    assert ([i.id for i in last.stop], last.start) == (["3"], 0)  # done: no more surge


def test_a_replica_that_died_while_baking_is_replaced_at_once() -> None:
    live = [inst(1, 1), inst(4, 2, age=5)]  # two old ones died
    assert plan(view(live)).start == 1
    assert plan(view(live, pending=1)).start == 0


def test_a_known_good_revision_skips_bake_and_replaces_bad_replicas_at_once() -> None:
    live = [inst(1, 2), inst(2, 2), inst(3, 2), inst(4, 7, age=1, calls=20, errors=20)]
    step = plan(view(live, proven=True))
    assert ([i.id for i in step.stop], step.start, step.verdict) == (["4"], 0, None)


def test_judge_compares_the_new_revision_with_the_old() -> None:
    old = [inst(1, 1, calls=100, errors=2)]
    assert judge([inst(2, 2, calls=9, errors=9)], old, HEALTH).ok  # too few calls yet
    bad = judge([inst(2, 2, calls=20, errors=10)], old, HEALTH)
    assert not bad.ok and bad.reason.startswith("errors 10/20 = 50%, old revision 2/100 = 2%")
    assert judge([inst(2, 2, calls=20, errors=2)], old, HEALTH).ok  # 10 % is not worse by 10
    noisy = [inst(1, 1, calls=100, errors=30)]  # the old one fails as much: not the revision
    assert judge([inst(2, 2, calls=20, errors=7)], noisy, HEALTH).ok
    slow = judge([inst(2, 2, calls=20, timeouts=5)], old, HEALTH)
    assert not slow.ok and slow.reason.startswith("timeouts 5/20")
    step = plan(view([*old, inst(2, 2, age=1, calls=20, errors=10)]))
    assert step.verdict is not None and not step.verdict.ok


def test_sets_merge_by_field() -> None:
    assert merge_sets(["a=1", "b=2"], ["b=3", "c=4"]) == ("a=1", "b=3", "c=4")
    with pytest.raises(ValueError, match="field=value"):
        merge_sets([], ["oops"])


async def test_deploy_rollback_and_revert_through_the_keys(aredis: AsyncClient) -> None:
    assert await desired_revision(aredis, "ns") == Revision(0)
    assert await deploy(aredis, "ns", ["a=1"], "v1", Revision(0)) == 1
    assert await deploy(aredis, "ns", ["b=2"], None, Revision(0)) == -1  # stale base: refused
    one = await desired_revision(aredis, "ns")
    assert one == Revision(1, "v1", ("a=1",))
    assert await deploy(aredis, "ns", ["a=5"], "v2", one) == 2
    assert await desired_revision(aredis, "ns") == Revision(2, "v2", ("a=5",))
    assert await read_revision(aredis, "ns", 1) == one
    assert await good_revisions(aredis, "ns") == [0]
    assert await mark_good(aredis, "ns", 1) and not await mark_good(aredis, "ns", 1)
    back = await revert(aredis, "ns", Revision(2, "v2", ("a=5",)), "errors 10/20")
    assert back == one and await desired_revision(aredis, "ns") == one
    state = await rollout_state(aredis, "ns")
    assert state["state"] == "rolled back" and "errors 10/20" in state["msg"]
    assert await revert(aredis, "ns", Revision(2), "again") is None  # desired is no longer 2
    with pytest.raises(ValueError, match="no earlier good revision"):
        await rollback(aredis, "ns")  # 1 is desired and the only good one
    assert await rollback(aredis, "ns", 0) == (one, Revision(0))
    with pytest.raises(ValueError, match="no revision 9"):
        await rollback(aredis, "ns", 9)


async def test_the_spec_scripts_check_the_expected_revision(aredis: AsyncClient) -> None:
    keys = ["{ns}:cscale:revision", "{ns}:cscale:revisions", "{ns}:cscale:spec"]
    assert await scripts.run(aredis, "rollout_deploy", keys, ["0", "{}", "v", "[]"]) == 1
    assert await scripts.run(aredis, "rollout_deploy", keys, ["0", "{}", "v", "[]"]) == -1
    assert await scripts.run(aredis, "rollout_deploy", keys, ["", "{}", "w", "[]"]) == 2
    assert await scripts.run(aredis, "rollout_set", keys[2:], ["1", "1", "v", "[]"]) == 0
    assert await scripts.run(aredis, "rollout_set", keys[2:], ["2", "1", "v", "[]"]) == 1
    assert await aredis.hget(keys[2], "revision") == b"1"
    assert await aredis.get(keys[0]) == b"2"  # the counter only grows


def test_an_instance_registers_its_revision() -> None:
    config = ServiceConfig.model_validate({"serviceRevision": 3, "serviceNamespace": "ns"})
    assert assemble("lpush", config).lifecycle.revision == 3


def test_deploy_and_rollback_commands(redis_url: str, sredis: redis.Redis) -> None:
    result = run("deploy", "demo:w", "--set", "work=0.1", "--version", "v2", "--redis", redis_url)
    assert result.returncode == 0, result.stderr
    assert "revision 1 desired (was 0)" in result.stdout
    assert "warning: no cscale agent runs demo:w (a typo?" in result.stderr
    assert sredis.hget("{demo:w}:cscale:spec", "sets") == b'["work=0.1"]'
    assert invoke("deploy", "demo:w", "--redis", redis_url).returncode == 2  # nothing to deploy
    assert invoke("deploy", "demo:w", "--set", "x", "--redis", redis_url).returncode == 2
    back = invoke("rollback", "demo:w", "--redis", redis_url)
    assert back.returncode == 0 and "revision 0 desired again (was revision 1 (v2))" in back.stdout
    again = invoke("rollback", "demo:w", "--redis", redis_url)
    assert again.returncode == 2 and "no earlier good revision" in again.stderr
    sredis.hset(SPECS_KEY, "demo:w", "{}")  # as an agent publishes what it runs
    known = invoke("deploy", "demo:w", "--version", "v3", "--redis", redis_url)
    assert known.returncode == 0 and "warning" not in known.stderr
