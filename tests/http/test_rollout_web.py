"""Rollouts of the example site's handler service under wrk load: the site runs under
`redline up` (without its `hello` service), and a cscale agent runs `hello` — two replicas of
`redline handler` — and rolls it out.

A good revision (a new handler module) replaces both replicas with zero non-2xx answers; a
faulty one (its handler raises on half its requests) rolls itself back, and the 5xx answers
users saw are bounded by its short life (reported with ``pytest -s``).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests import cscale_helpers as ch
from tests.helpers import run, spawn, wait_for
from tests.http.web import WEBSITE, answers, topology
from tests.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.alone, pytest.mark.timeout(240)]

NS = "website:hello"
STATE = "{website:hello}:cscale:rollout"
LOAD_AT_MOST = 120  # seconds; the tests stop the load once they saw the outcome, and a margin
AFTER = 3.0  # seconds of load after the outcome: the settled service answers as well

GOOD = """
from redline.http import handler

@handler(r"GET /hello/(?P<name>\\w+)")
async def hello(request, name):
    return {"hello": name, "v": 2}
"""

BAD = """
import itertools
from redline.http import handler

calls = itertools.count()

@handler(r"GET /hello/(?P<name>\\w+)")
async def hello(request, name):
    if next(calls) % 2:
        raise RuntimeError("v3 is broken on every other request")
    return {"hello": name, "v": 3}
"""

WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; failed = 0; other = 0 end
function response(status, headers, body)
  if status < 300 then ok = ok + 1 elseif status >= 500 then failed = failed + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local o, f, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); f = f + t:get("failed"); x = x + t:get("other")
  end
  local e = summary.errors
  io.write(string.format("STATUS ok=%d failed=%d other=%d\\n", o, f, x))
  io.write(string.format("SOCKET %d\\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("LATENCY p50=%.0fms max=%.0fms\\n", latency:percentile(50) / 1000,
    latency.max / 1000))
end
"""


class Site:
    """The example site (without `hello`) under `redline up`, and `hello` under an agent."""

    def __init__(self, here: Path, url: str, port: int) -> None:
        self.here, self.url, self.port = here, url, port

    def hello_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hello/you"

    def load(self) -> subprocess.Popen[str]:
        """wrk until `results` stops it: 2 threads, 8 connections, answers sorted by status."""
        script = self.here / "status.lua"
        script.write_text(WRK_SCRIPT)
        argv = ["wrk", "-t2", "-c8", f"-d{LOAD_AT_MOST}s", "--timeout=8s", "-s", str(script)]
        return subprocess.Popen([*argv, self.hello_url()], stdout=subprocess.PIPE, text=True)


def results(wrk: subprocess.Popen[str], after: float) -> tuple[int, int, int, int]:
    """(2xx, 5xx, other statuses, socket errors) of wrk, stopped `after` seconds from now
    (SIGINT: wrk stops its connections and reports what it saw until then)."""
    time.sleep(after)
    wrk.send_signal(signal.SIGINT)
    out, _ = wrk.communicate(timeout=120)
    print(" ".join(re.findall(r"LATENCY .*", out)))  # shown with pytest -s
    status = re.search(r"STATUS ok=(\d+) failed=(\d+) other=(\d+)", out)
    sock = re.search(r"SOCKET (\d+)", out)
    assert status and sock, out
    ok, failed, other = (int(g) for g in status.groups())
    return ok, failed, other, int(sock.group(1))


@pytest.fixture
def site(tmp_path: Path, redis_url: str, sredis: redis.Redis) -> Iterator[Site]:
    if shutil.which("wrk") is None:
        pytest.skip("needs wrk (apt-get install wrk)")
    www = tmp_path / "website"
    shutil.copytree(WEBSITE.parent, www)
    toml = (www / "redline.toml").read_text()
    (www / "redline.toml").write_text(toml[: toml.index("[services.hello]")])
    (www / "v2.py").write_text(GOOD)
    (www / "v3.py").write_text(BAD)
    hello = {"in": NS, "module": str(www / "handlers.py"), "popTimeout": 0.5, "lease": 5}
    (www / "hello.json").write_text(json.dumps(hello))
    spec = {"service": "handler", "config": str(www / "hello.json"), "replicas": 2}
    spec |= {"sets": ["serviceRenew=1"], "rollout": {"bake": 3}}
    spec |= {"health": {"threshold": 0.1, "minCount": 10}}
    (www / "plan.json").write_text(json.dumps({"services": {NS: spec}}))
    port = free_port()
    made = Site(www, redis_url, port)
    up = topology(www / "redline.toml", redis_url, port, www / "up.log")
    with ch.agents(sredis) as agents, up:
        args = ("cscale", str(www / "plan.json"), "--host", "alpha", "--redis", redis_url)
        agents.append(spawn(*args, "--interval", "0.2", log=www / "alpha.log", cwd=www))
        ch.settle(sredis, NS, 2)
        wait_for(lambda: answers(made.hello_url()), timeout=30)
        yield made


def deploy(url: str, *args: str) -> None:
    result = run("deploy", NS, *args, "--redis", url)
    assert result.returncode == 0, result.stderr


def revisions(client: redis.Redis) -> list[str]:
    return sorted(inst.get("revision", "0") for inst in ch.live(client, NS))


def test_a_good_handler_revision_rolls_out_under_load_with_no_error(
    site: Site, sredis: redis.Redis
) -> None:
    sampler = ch.Sampler(site.url, NS)
    sampler.start()
    wrk = site.load()
    sampler.phase = "rollout"
    deploy(site.url, "--set", f"module={site.here / 'v2.py'}", "--version", "v2")
    wait_for(lambda: sredis.hmget(STATE, "state", "revision") == [b"done", b"1"], timeout=90)
    sampler.phase = "after"
    ok, failed, other, broken = results(wrk, after=AFTER)
    sampler.done.set()
    sampler.join()
    print(f"load during the rollout: 2xx={ok} 5xx={failed} other={other} socket={broken}")
    assert (failed, other, broken) == (0, 0, 0) and ok > 100
    assert revisions(sredis) == ["1", "1"]
    counts = sampler.counts("rollout")
    assert min(counts) >= 2 and max(counts) <= 3  # never fewer than desired, one surge


def test_a_faulty_handler_revision_rolls_itself_back_under_load(
    site: Site, sredis: redis.Redis
) -> None:
    before = {inst["id"] for inst in ch.live(sredis, NS)}
    wrk = site.load()
    deploy(site.url, "--set", f"module={site.here / 'v3.py'}", "--version", "v3")
    wait_for(lambda: sredis.hget(STATE, "state") == b"rolled back", timeout=60)
    assert sredis.hget("{website:hello}:cscale:spec", "revision") == b"0"
    wait_for(lambda: revisions(sredis) == ["0", "0"], timeout=30)
    assert {inst["id"] for inst in ch.live(sredis, NS)} == before  # no old replica stopped
    ok, failed, other, broken = results(wrk, after=AFTER)
    print(f"5xx users saw from the faulty revision: {failed} (of {ok + failed} answers)")
    print(f"decision: {sredis.hget(STATE, 'msg').decode()}")
    assert other == 0 and broken == 0
    # had it served its third of the traffic to the end, a sixth of the answers would be 5xx
    assert failed > 0 and failed * 6 < ok + failed
