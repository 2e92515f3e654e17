"""The errors a newcomer meets first, each one line that says what to do, a non-zero exit and
no traceback: a server down, a URL redline cannot use, a task or handler module that does not
import, ids that name nothing. Real processes (`run`) against real servers; a server down
for each command and the ids that name nothing in this process (`invoke`: the same lines, no
Python start-up each), a server down through REDLINE_REDIS in real processes."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from redline.connection import connect_sync
from redline.queue import SyncReliableQueue
from tests.helpers import invoke, run

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _one_line(done: subprocess.CompletedProcess[str], code: int, *said: str) -> str:
    """The error line of `done`, after checking its exit code and that it names `said`."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    for text in said:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("services",),
        ("scale", "demo:worker", "2"),
        ("rollback", "demo:worker"),
        ("metrics", "demo:mpush"),
        ("jobs", "busy"),
        ("queue", "info", "jobs"),
    ],
)
def test_a_server_that_is_down_is_one_line(command: tuple[str, ...]) -> None:
    done = invoke(*command, "--redis", DOWN)  # real processes: the REDLINE_REDIS test below
    _one_line(done, 1, "127.0.0.1:1", "is the server up? check --redis URL")


def test_a_url_redline_cannot_use_is_one_line() -> None:
    done = run("status", "--redis", "http://127.0.0.1:6379")
    _one_line(done, 1, "unsupported Redis URL scheme 'http'", "expected one of redis://")


def test_ping_takes_redis_as_every_command_does(redis_url: str) -> None:
    done = run("ping", "--redis", redis_url)
    assert done.returncode == 0 and done.stdout.startswith("PONG "), done.stderr
    _one_line(run("ping", "--redis", DOWN), 1, "cannot reach")


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("def broken(:\n", "SyntaxError: invalid syntax at"),
        ("raise RuntimeError('no settings here')\n", "RuntimeError: no settings here at"),
        ("import no_such_dependency_here\n", "No module named 'no_such_dependency_here'"),
    ],
)
def test_a_tasks_module_that_does_not_import_is_one_line(
    tmp_path: Path, redis_url: str, source: str, said: str
) -> None:
    (tmp_path / "broken_tasks.py").write_text(source)
    for processes in ("1", "2"):  # the worker alone, and its supervisor
        done = run(
            "worker", "broken_tasks", "--path", str(tmp_path), "--processes", processes,
            "--redis", redis_url,
        )  # fmt: skip
        line = _one_line(done, 2, "cannot import tasks module 'broken_tasks'", said)
        if "No module" not in said:
            assert "broken_tasks.py:1" in line and "shows the traceback" in line


def test_a_handler_module_that_does_not_import_is_one_line(tmp_path: Path, redis_url: str) -> None:
    module = tmp_path / "hello.py"
    module.write_text("from redline.http import handler\nraise KeyError('route')\n")
    done = run("handler", str(module), "--set", "in=web:hello", "--redis", redis_url)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"KeyError: 'route' at {module}:2" in done.stderr
    missing = run("handler", "no_such_handlers", "--set", "in=web:x", "--redis", redis_url)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "No module named 'no_such_handlers'" in missing.stderr


def test_ids_that_name_nothing_exit_1_and_say_where_to_look(redis_url: str) -> None:
    queue = SyncReliableQueue(connect_sync(redis_url))
    queue.push("jobs", b"a")
    (held,) = queue.pop("jobs")
    done = invoke(
        "queue", "ack", "jobs", f"{held.id}:{held.deliveries}", "99:1", "--redis", redis_url
    )
    assert "acknowledged 1 of 2" in done.stdout
    _one_line(done, 1, "refused 99:1:", "redline queue inspect jobs --pending")
    requeued = invoke("queue", "requeue", "jobs", "12345", "--redis", redis_url)
    assert requeued.stdout == "requeued 0 of 1\n"
    _one_line(requeued, 1, "not every id is a dead letter of 'jobs'", "redline queue dead jobs")
    deleted = invoke("queue", "delete", "jobs", "12345", "--redis", redis_url)
    _one_line(deleted, 1, "redline queue dead jobs")


@pytest.mark.parametrize("command", [("status",), ("scale", "demo:worker", "2"), ("ping",)])
def test_redline_redis_names_the_server_of_every_operator_command(
    command: tuple[str, ...],
) -> None:
    done = run(*command, env={"REDLINE_REDIS": DOWN})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "127.0.0.1:1" in done.stderr  # the server it was told, not the default one


def test_a_dashboard_port_in_use_is_one_line(redis_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        done = run("dashboard", "--port", port, "--redis", redis_url)
    _one_line(done, 1, f"cannot listen on 127.0.0.1:{port}", "choose another --port")


def test_redline_up_on_a_port_in_use_stops_before_starting_anything() -> None:
    topology = Path(__file__).parents[2] / "examples" / "website" / "redline.toml"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        done = run("up", str(topology), "--port", port)
    _one_line(done, 1, f"port {port}: Address already in use", "choose another with --port")
    assert "processes on" not in done.stdout  # nothing was started


def test_a_service_that_is_no_command_is_refused_before_anything_starts(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[services."demo:w"]\nservice = "lpuhs"\n')
    done = run("cscale", str(plan), "--host", "h1", "--redis", DOWN)  # refused before Redis
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'lpuhs' is not a redline command (did you mean 'lpush'?" in done.stderr
    topology = tmp_path / "up.toml"
    topology.write_text('[services.web]\nkind = "himporer"\n')
    done = run("up", str(topology), "--redis", DOWN)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "services.web.kind: 'himporer' is not a redline command (did you mean 'himporter'?" in (
        done.stderr
    )
