"""The `redline mpush|lpush|mbalance|metrics|demo` commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from redline.cli.demo import DEMO_CONFIG
from redline.runtime.lifecycle import ids_key
from redline.runtime.metrics import Metrics
from tests.helpers import invoke, run
from tests.servers import Cluster

ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_demo_config_is_the_seeds() -> None:
    assert json.loads((ROOT / "config" / "mpush.json").read_text()) == DEMO_CONFIG


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"popTimeout": "soon", "out": "not-a-list", "colour": "red"}))
    result = invoke("mpush", "--config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    assert any(line.startswith("config error: in: missing") for line in lines)
    assert any("popTimeout: 'soon'" in line for line in lines)
    assert any("out: 'not-a-list'" in line for line in lines)
    assert any("colour: 'red' — unknown field" in line for line in lines)


def test_mbalance_limit_naming_an_unknown_output_is_a_config_error() -> None:
    result = invoke("mbalance", "--set", "in=a", "--set", 'out=["b"]', "--set", 'maxLength={"c":1}')
    assert result.returncode == 2 and "not in out" in result.stderr


def test_cross_slot_config_is_refused_with_exit_2(cluster: Cluster) -> None:
    sets = ["--set", "in=orders", "--set", 'out=["audit","billing"]']
    result = invoke("mpush", "--redis", cluster.url, *sets)
    assert result.returncode == 2
    assert "keys must share one cluster slot" in result.stderr and "hash tag" in result.stderr


@pytest.mark.parametrize("args", [["demo"], ["mpush", "--demo"]])
def test_demo_runs_the_seeds_autodemo(args: list[str], redis_url: str, sredis: redis.Redis) -> None:
    result = run(*args, "--redis", redis_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for command in (
        "lpush demo:mpush:in one",
        "lrange demo:mpush:out0 0 -1",
        "hgetall demo:mpush:",
    ):
        assert command in out
    assert out.count('1) "three"') == 2 and out.count('3) "one"') == 2
    assert "serves: demo:mpush:in -> demo:mpush:out0,demo:mpush:out1" in out
    assert "'in': 'demo:mpush:in'" in result.stderr  # the config is logged at start-up
    assert sredis.llen(ids_key("demo:mpush")) == 0


async def test_metrics_prints_a_table(redis_url: str, aredis) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics("demo:mpush", timeout_ms=1000)
    metrics.observe("done", 300)
    metrics.count("forwarded", 7)
    await metrics.flush(aredis)
    result = run("metrics", "demo:mpush", "--redis", redis_url, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "300.0" in rows["done"] and " 7 " in rows["forwarded"]
    empty = run("metrics", "nothing:here", "--redis", redis_url)
    assert empty.returncode == 0 and "no metrics" in empty.stdout


async def test_metrics_leave_out_columns_no_metric_fills(redis_url: str, aredis) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics("demo:lpush", timeout_ms=1000)
    metrics.count("forwarded", 12345)  # a counter: no durations, no histogram
    await metrics.flush(aredis)
    result = run("metrics", "demo:lpush", "--redis", redis_url, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    (header,) = [line for line in result.stdout.splitlines() if "name" in line]
    assert header.split("┃")[1:3] == [" name      ", " count "]
    assert "histo" not in result.stdout and "12345" in result.stdout  # nothing cut to "…"


@pytest.mark.parametrize("command", ["mpush", "lpush", "mbalance", "metrics"])
def test_help_explains_the_command(command: str) -> None:
    result = invoke(command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout
