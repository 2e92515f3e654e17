from __future__ import annotations

from tests.helpers import invoke, run


def test_vpush_refuses_a_bad_config_before_touching_redis() -> None:
    done = run("vpush", "--redis", "redis://127.0.0.1:1/0", "--set", "in=a", "--set", "batch=0")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert any(line.startswith("config error: out: missing") for line in lines)
    assert any(line.startswith("config error: outRedis: missing") for line in lines)
    assert any("batch: 0" in line for line in lines)


def test_vpush_help_explains_it() -> None:
    done = invoke("vpush", "--help")
    assert done.returncode == 0 and "outRedis" in done.stdout and "exactly" not in done.stderr
