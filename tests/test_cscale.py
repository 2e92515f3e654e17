"""cscale's pieces on their own: the policy, the choice of victims, the scripts, the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redline.connection import AsyncClient
from redline.errors import ConfigError
from redline.scaling.autoscale import AutoscalePolicy, Autoscaler
from redline.scaling.cscale import (
    active_key,
    choose_victims,
    load_scale_file,
    lock_key,
    starting_key,
)
from redline.scaling.registry import Instance
from redline.scripting import scripts
from tests.helpers import invoke

POLICY = AutoscalePolicy(queue="q", perReplica=10, min=1, max=5, downAfter=30)


def test_policy_scales_up_at_once_to_what_the_queue_needs() -> None:
    scaler = Autoscaler(POLICY)
    decision = scaler.decide(0, 42, 1)
    assert decision is not None and decision.replicas == 5
    assert "backlog=42" in decision.reason
    assert scaler.decide(1, 1000, 5) is None  # already at max


def test_policy_scales_down_one_step_after_holding_below() -> None:
    scaler = Autoscaler(POLICY)
    assert scaler.decide(0, 0, 4) is None
    assert scaler.decide(29, 0, 4) is None
    down = scaler.decide(30, 0, 4)
    assert down is not None and down.replicas == 3
    assert scaler.decide(45, 0, 3) is None  # quiet period since the last change
    assert scaler.decide(46, 25, 3) is None  # 25 needs 3: the wait starts again
    assert scaler.decide(60, 0, 3) is None
    assert scaler.decide(91, 0, 3) is not None


def test_policy_refuses_min_above_max() -> None:
    with pytest.raises(ValueError, match="min"):
        AutoscalePolicy(queue="q", perReplica=1, min=3, max=2)


def _inst(ident: int, role: str = "active") -> Instance:
    return Instance("ns", str(ident), "h", 100 + ident, 0, 0, role=role)


def test_victims_are_the_newest_and_surplus_actives_go_first() -> None:
    live = [_inst(1), _inst(2), _inst(3, "standby"), _inst(4)]
    assert [i.id for i in choose_victims(live, 2, active_limit=3)] == ["4", "3"]
    assert [i.id for i in choose_victims(live, 1, active_limit=1)] == ["4"]
    assert [i.id for i in choose_victims(live, 2, active_limit=1)] == ["4", "2"]
    assert choose_victims(live, 0, 1) == []


async def test_claims_need_the_lease_and_expire(aredis: AsyncClient) -> None:
    keys = [lock_key("ns"), starting_key("ns")]
    await aredis.set(keys[0], "mine")
    assert await scripts.run(aredis, "cscale_claim", keys, ["theirs", 10_000, "a"]) == -1
    assert await scripts.run(aredis, "cscale_claim", keys, ["mine", 10_000, "a", "b"]) == 2
    assert await scripts.run(aredis, "cscale_claim", keys, ["mine", -1, "c"]) == 1
    assert await scripts.run(aredis, "cscale_pending", keys[1:]) == [b"a", b"b"]
    assert await scripts.run(aredis, "cscale_unlock", keys[:1], ["theirs"]) == 0
    assert await scripts.run(aredis, "cscale_unlock", keys[:1], ["mine"]) == 1


async def test_active_slots_are_limited_and_freed(aredis: AsyncClient) -> None:
    key = [active_key("ns")]

    async def slot(ident: str, limit: int, *dead: str) -> int:
        return int(await scripts.run(aredis, "standby_slot", key, [ident, 60_000, limit, *dead]))

    assert [await slot("1", 2), await slot("2", 2), await slot("3", 2)] == [1, 1, 0]
    assert await slot("3", 2, "1") == 1  # 1 is dead: its slot goes to 3
    assert await slot("3", 1) == -1  # limit lowered: the newest holder gives its slot up
    assert await slot("2", 1) == 1
    assert await aredis.zrange(key[0], 0, -1) == [b"2"]


def test_scale_file_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    spec = {
        "service": "lpush",
        "replicas": 2,
        "autoscale": {"queue": "q", "perReplica": 5, "max": 3},
    }
    good.write_text(json.dumps({"services": {"demo:w": spec}}))
    assert load_scale_file(good).services["demo:w"].autoscale is not None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"services": {"demo:w": {"service": "x", "argv": ["y"]}}}))
    with pytest.raises(ConfigError, match="exactly one"):
        load_scale_file(bad)


def test_cscale_command_exits_2_on_a_bad_file(tmp_path: Path, redis_url: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[services."demo:w"]\nreplicas = -1\nservice = "lpush"\n')
    result = invoke("cscale", str(bad), "--host", "a", "--redis", redis_url)
    assert result.returncode == 2
    assert "replicas" in result.stderr


def test_scale_command_sets_the_desired_count(redis_url: str, sredis) -> None:  # type: ignore[no-untyped-def]
    result = invoke("scale", "demo:w", "3", "--redis", redis_url)
    assert result.returncode == 0 and "desired replicas 3 (was unset)" in result.stdout
    assert sredis.hget("redline:scale", "demo:w") == b"3"
    assert invoke("scale", "demo:w", "-1", "--redis", redis_url).returncode == 2
