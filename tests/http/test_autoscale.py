"""`redline up` scales a web service with its load: up under a wrk ramp, back down after,
without flapping and without a failed request during either move."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from redline.scaling.cscale import DESIRED_KEY, EVENTS_KEY
from tests.conftest import needs_tool
from tests.helpers import run, wait_for
from tests.http.test_resilience import settled
from tests.http.web import Wrk, fresh_db, live_pids, topology
from tests.servers import ServerProcess, free_port

pytestmark = pytest.mark.timeout(240)

TOPOLOGY = """
[defaults]
serviceNamespace = "as"
popTimeout = 0.5

[services.himporter]
out = "as:http"

[services.hrouter]
in = "as:http"
routes = [{ path = "/(?P<path>.*)", queue = "as:assets" }]

[services.hassets]
in = "as:assets"
root = "www"
autoscale = { min = 1, max = 3, perReplica = 2, interval = 1, downAfter = 3 }
"""


# Alone: replicas follow the load wrk makes; other tests beside it would load it too.
@pytest.mark.slow
@pytest.mark.alone
@needs_tool("wrk", "wrk")
def test_hassets_replicas_follow_a_load_ramp(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "1k.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "up.toml").write_text(TOPOLOGY)
    url, port = fresh_db(server, 92), free_port()
    client = redis.Redis.from_url(url)
    site = f"http://127.0.0.1:{port}"
    with topology(tmp_path / "up.toml", url, port, tmp_path / "up.log", ("/1k.bin",)):
        # The readiness probes may have left a backlog that scaled up already: start from one.
        wait_for(lambda: _settled_at_one(client), timeout=60)
        before = len(_moves(client))
        heavy = Wrk(site, ("/1k.bin",), tmp_path, connections=32)
        try:  # the backlog of as:assets under 32 connections asks for the most replicas
            wait_for(lambda: len(live_pids(client, "as:hassets")) == 3, timeout=90)
        finally:
            up = heavy.stop()
        light = Wrk(site, ("/1k.bin",), tmp_path, connections=2)
        try:  # light load goes on while replicas are retired one by one
            wait_for(lambda: len(live_pids(client, "as:hassets")) == 1, timeout=90)
        finally:
            down = light.stop()
        status = run("status", "--redis", url)
        desired = client.hget(DESIRED_KEY, "as:hassets")
    for result in (up, down):
        assert result.failed == 0 and result.broken == 0 and result.ok > 0, result.summary
    moves = _moves(client)[before:]
    print(moves, up.ok, down.ok)  # shown with pytest -s
    assert moves[0] == (1, 2) or moves[0] == (1, 3), moves
    peak = moves.index(max(moves, key=lambda m: m[1]))
    assert all(a < b for a, b in moves[: peak + 1]), f"not straight up: {moves}"
    assert all(a == b + 1 for a, b in moves[peak + 1 :]), f"not one by one down: {moves}"
    assert moves[-1] == (2, 1) and desired == b"1", (moves, desired)
    assert "autoscale 2 -> 1" in status.stdout and "as:assets" in status.stdout, status.stdout
    assert client.hget(DESIRED_KEY, "as:hassets") is None  # withdrawn when `up` stopped
    for queue in ("as:http", "as:assets"):
        wait_for(lambda q=queue: settled(url, q), timeout=30)  # type: ignore[misc]


def _settled_at_one(client: redis.Redis) -> bool:
    one = len(live_pids(client, "as:hassets")) == 1
    return one and client.hget(DESIRED_KEY, "as:hassets") == b"1"


def _moves(client: redis.Redis) -> list[tuple[int, int]]:
    """The autoscaling decisions `up` recorded for as:hassets, oldest first."""
    found = []
    for raw in reversed(client.lrange(EVENTS_KEY, 0, -1)):
        move = re.search(r"autoscale (\d+) -> (\d+)", raw.decode())
        if move and '"as:hassets"' in raw.decode():
            found.append((int(move[1]), int(move[2])))
    return found
