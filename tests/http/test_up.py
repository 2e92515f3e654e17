"""`redline up`: topology files, validation, and restarting a replica that dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from redline.errors import ConfigError
from redline.rquery.service import RQueryConfig
from redline.runtime.assembly import namespace_of
from redline.scaling.up import load_topology, seed_commands
from redline.services.lpush import LpushConfig
from redline.services.mbalance import MbalanceConfig
from redline.services.mpush import MpushConfig
from redline.services.vpush import VpushConfig
from tests.helpers import run


def write(tmp_path: Path, text: str, name: str = "up.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_services_defaults_namespace_prefix_and_port(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'port = 9000\n[defaults]\nserviceNamespace = "site"\npopTimeout = 2\n'
        '[services.front]\nkind = "himporter"\nreplicas = 2\n'
        '[services.assets]\nkind = "hassets"\nserviceNamespace = "mine"\n',
    )
    topology = load_topology(path, port=9100)
    front, assets = topology.services
    assert (front.kind, front.replicas, front.config["port"]) == ("himporter", 2, 9100)
    assert front.config["serviceNamespace"] == "site:front" and front.config["popTimeout"] == 2
    assert assets.config["serviceNamespace"] == "mine" and "port" not in assets.config


def test_a_plans_namespace_is_the_one_its_service_derives(tmp_path: Path) -> None:
    """`up` unregisters dead replicas and publishes autoscale counts under the namespace the
    service registers in: for a forwarder, vpush and rquery that is beside their input queue."""
    path = write(
        tmp_path,
        '[services.fan]\nkind = "mpush"\nin = "a"\nout = ["b"]\n'
        '[services.one]\nkind = "lpush"\nin = "c"\nout = "d"\n'
        '[services.spread]\nkind = "mbalance"\nin = "e"\nout = ["f"]\n'
        '[services.far]\nkind = "vpush"\nin = "g"\nout = "h"\noutRedis = "redis://x:1/0"\n'
        '[services.ask]\nkind = "rquery"\n'
        '[services.pages]\nkind = "hassets"\nin = "i"\nroot = "."\n',
    )
    configs = {"mpush": MpushConfig, "lpush": LpushConfig, "mbalance": MbalanceConfig}
    configs |= {"vpush": VpushConfig, "rquery": RQueryConfig}
    for plan in load_topology(path).services:
        if plan.kind in configs:
            config = configs[plan.kind].model_validate(plan.config)
            queue = getattr(config, "in_", None) or getattr(config, "in_queue", None)
            assert plan.namespace == namespace_of(plan.kind, config, queue), plan.name
        else:
            assert plan.namespace == "redline:hassets"
    assert [p.namespace for p in load_topology(path).services][:2] == ["{a}:service", "{c}:service"]


def test_problems_are_listed_each(tmp_path: Path) -> None:
    path = write(tmp_path, "[services.a]\nreplicas = -1\n[services.b]\nreplicas = 1\nx=1\n")
    with pytest.raises(ConfigError) as caught:
        load_topology(path, lambda plan: ["x: unknown"] if "x" in plan.config else [])
    assert caught.value.problems == [
        "services.a.replicas: -1 — expected a count ≥ 0",
        "services.b.x: unknown",
    ]
    with pytest.raises(ConfigError, match="add at least one"):
        load_topology(write(tmp_path, "port = 1\n", "empty.toml"))


def test_json_topology_and_seed_file(tmp_path: Path) -> None:
    (tmp_path / "seed.redis").write_text('# data\nset a "b c"\n\nrpush l 1 2\n')
    path = write(tmp_path, '{"seed": "seed.redis", "services": {"x": {}}}', "up.json")
    topology = load_topology(path)
    assert topology.seed is not None
    assert seed_commands(topology.seed) == [["set", "a", "b c"], ["rpush", "l", "1", "2"]]


def test_cli_refuses_a_bad_service_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[services.files]\nkind = "hassets"\nin = "q"\n')
    done = run("up", str(path))
    assert done.returncode == 2 and "services.files.root: missing" in done.stderr


def test_a_killed_replica_is_restarted(tmp_path: Path, redis_url: str, sredis) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import spawn, stop, wait_for

    (tmp_path / "www").mkdir()
    path = write(
        tmp_path,
        '[defaults]\nserviceNamespace = "rs"\npopTimeout = 0.5\n'
        '[services.files]\nkind = "hassets"\nin = "rs:files"\nroot = "www"\n',
    )
    proc = spawn("up", str(path), "--redis", redis_url, log=tmp_path / "up.log")
    try:
        first = wait_for(lambda: _pid(sredis, "rs:files"), timeout=30)
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (_pid(sredis, "rs:files") or first) != first, timeout=30)
        assert second
    finally:
        assert stop(proc) == 0
    assert "exited code=-9; restart in" in (tmp_path / "up.log").read_text()


def _pid(client, namespace: str) -> int | None:  # type: ignore[no-untyped-def]
    for ident in client.lrange(f"{namespace}:ids", 0, 0):
        pid = client.hget(f"{namespace}:{ident.decode()}", "pid")
        if pid:
            return int(pid)
    return None


def test_ctrl_c_in_a_terminal_stops_services_before_the_embedded_server(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the whole foreground process group. The embedded server must
    not get it: `up` stops the services first (they say goodbye to Redis) and the server last."""
    import subprocess

    from redline.connection.embedded import find_shared
    from tests.helpers import REDLINE, wait_for
    from tests.servers import free_port

    (tmp_path / "www").mkdir()
    path = write(
        tmp_path,
        '[defaults]\nserviceNamespace = "cc"\npopTimeout = 0.5\n'
        '[services.files]\nkind = "hassets"\nin = "cc:files"\nroot = "www"\n',
    )
    env = {**os.environ, "REDLINE_STATE_DIR": str(tmp_path / "state")}
    env["REDLINE_DEFAULT_PORT"] = str(free_port())  # nobody there: `up` starts its own server
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [*REDLINE, "up", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    log.close()
    try:
        shared = wait_for(lambda: find_shared(tmp_path / "state"), timeout=30)
        from redline.connection import connect_sync

        client = connect_sync(shared)
        wait_for(lambda: client.hget("cc:files:1", "pid"), timeout=30)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = (tmp_path / "up.log").read_text()
    noise = [line for line in output.splitlines() if "rror" in line or "Traceback" in line]
    assert noise == [], output
    assert "ended cc:files:1 del=1" in output  # unregistered while the server still ran


def test_autoscale_policy_defaults_to_the_services_queue_and_minimum(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[services.files]\nkind = "hassets"\nin = "q:files"\n'
        "autoscale = { max = 4, perReplica = 8 }\n"
        '[services.more]\nkind = "hassets"\nreplicas = 9\n'
        'autoscale = { queue = "x", min = 2, max = 3, perReplica = 1 }\n',
    )
    files, more = load_topology(path).services
    assert files.autoscale is not None and files.autoscale.queue == "q:files"
    assert (files.replicas, files.autoscale.min, "autoscale" not in files.config) == (1, 1, True)
    assert more.autoscale is not None and (more.autoscale.queue, more.replicas) == ("x", 3)


def test_a_bad_autoscale_policy_is_refused_with_each_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[services.a]\nin = "q"\nautoscale = { min = 5, max = 2, perReplica = 1 }\n'
        '[services.b]\nin = "q"\nautoscale = { max = 0, perReplica = 1, speed = 2 }\n'
        "[services.c]\nautoscale = { max = 2, perReplica = 1 }\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_topology(path)
    problems = "\n".join(caught.value.problems)
    assert "services.a.autoscale: " in problems and "min (5) must not be above max (2)" in problems
    assert "services.b.autoscale.max: " in problems and "services.b.autoscale.speed" in problems
    assert "services.c.autoscale.queue: missing — name the queue" in problems
