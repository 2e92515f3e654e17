"""`redline dev`, `redline ping` and the embedded server, as real processes."""

from __future__ import annotations

import signal
from pathlib import Path

from click.testing import CliRunner

from redline.cli.dev import ping
from redline.connection.embedded import EmbeddedServer, ensure_server, find_shared, reachable
from tests.helpers import run, spawn, wait_for
from tests.servers import Cluster, ServerProcess, free_port


def isolated(tmp_path: Path) -> dict[str, str]:
    """The environment of a redline command that sees no server at the default address (a port
    nothing listens on: CI runs Debian's redis-server on 6379) and its own state directory."""
    return {"REDLINE_STATE_DIR": str(tmp_path / "state"), "REDLINE_DEFAULT_PORT": str(free_port())}


def test_dev_and_ping_agree_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    env = isolated(tmp_path)
    dev = spawn("dev", "--port", str(port), env=env)
    try:
        wait_for(lambda: find_shared(tmp_path / "state"), timeout=20)
        result = run("ping", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"127.0.0.1:{port}" in result.stdout and "mode=standalone" in result.stdout
        again = run("dev", "--port", str(free_port()), env=env)  # a second one, by mistake
        assert again.returncode == 1 and "Traceback" not in again.stderr
        assert f"error: redline dev already runs at redis://127.0.0.1:{port}/0" in again.stderr
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=20)
    assert dev.returncode == 0, output
    assert "listening at redis://127.0.0.1:" in output
    assert not reachable("127.0.0.1", port)
    assert not (tmp_path / "state" / "dev.json").exists()


def test_ping_reports_version_and_cluster_mode(cluster: Cluster, server: ServerProcess) -> None:
    result = run("ping", cluster.url)
    assert result.returncode == 0 and "mode=cluster" in result.stdout
    assert "version=" in run("ping", server.url).stdout


def test_ping_unreachable_says_what_to_do(tmp_path: Path) -> None:
    result = run("ping", f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1 and "cannot reach" in result.stderr
    # in-process from here: the server resolution of the CLI, not a process's start-up
    env = isolated(tmp_path)
    result_in = CliRunner().invoke(ping, [], env=env)
    port = env["REDLINE_DEFAULT_PORT"]
    assert result_in.exit_code == 1 and f"no server at 127.0.0.1:{port}" in result_in.output
    result_in = CliRunner().invoke(ping, [], env={"REDLINE_DEFAULT_PORT": "http"})
    assert result_in.exit_code == 1
    assert "REDLINE_DEFAULT_PORT='http' is not a port" in result_in.output


def test_the_default_address_wins_over_a_dev_server(tmp_path: Path, server: ServerProcess) -> None:
    env = {**isolated(tmp_path), "REDLINE_DEFAULT_PORT": str(server.port)}
    with EmbeddedServer(port=free_port(), state_dir=tmp_path / "state"):
        result = CliRunner().invoke(ping, [], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"PONG redis://127.0.0.1:{server.port}/0 ")


def test_data_dir_keeps_data_across_restarts(tmp_path: Path) -> None:
    with EmbeddedServer(port=free_port(), data_dir=tmp_path / "data") as first:
        from redline.connection import connect_sync

        connect_sync(first.url).set("kept", "yes")
    with EmbeddedServer(port=free_port(), data_dir=tmp_path / "data") as second:
        assert connect_sync(second.url).get("kept") == b"yes"


def test_without_data_dir_nothing_is_left(tmp_path: Path) -> None:
    server = EmbeddedServer(port=free_port())
    server.start()
    data_dir = Path(server._server.data_dir)
    server.stop()
    assert not data_dir.exists()


def test_ensure_server_shares_a_published_server(tmp_path: Path, server: ServerProcess) -> None:
    nobody = free_port()  # the default address, where no server answers
    owner = EmbeddedServer(port=free_port(), state_dir=tmp_path)
    url = owner.start()
    try:
        assert ensure_server(None, tmp_path, nobody) == (url, None)
        # a server at the default address comes first
        assert ensure_server(None, tmp_path, server.port) == (server.url, None)
    finally:
        owner.stop()
    assert ensure_server("redis://given:1/0", tmp_path) == ("redis://given:1/0", None)
