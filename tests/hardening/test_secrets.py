"""A password in the Redis URL never shows: not in logs, `redline status`, or any error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.config import ServiceConfig, load_config
from redline.errors import ConfigError
from tests.helpers import run, spawn, stop, wait_for
from tests.servers import ServerProcess, free_port

SECRET = "pw-Sekr1t-7f3a"


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerProcess]:
    srv = ServerProcess(config={"requirepass": SECRET}).start()
    yield srv
    srv.close()


def _url(port: int, password: str = SECRET) -> str:
    return f"redis://default:{password}@127.0.0.1:{port}/0"


def _clean(text: str) -> str:
    assert SECRET not in text, text
    return text


def test_service_logs_and_status_never_show_the_password(
    guarded: ServerProcess, tmp_path: Path
) -> None:
    log = tmp_path / "mpush.log"
    outs = json.dumps(["{sec}:a"])
    sets = [
        "--set",
        "in={sec}:in",
        "--set",
        f"out={outs}",
        "--set",
        f"serviceRedis={_url(guarded.port)}",
    ]
    proc = spawn("mpush", "--redis", _url(guarded.port), *sets, log=log)
    try:
        client = guarded.client(password=SECRET)
        client.lpush("{sec}:in", b"x")
        wait_for(lambda: client.llen("{sec}:a") == 1, timeout=20)
        status = run("status", "--redis", _url(guarded.port), "--queue", "{sec}:a")
        assert status.returncode == 0, status.stderr
        assert "{sec}:a" in _clean(status.stdout + status.stderr)
    finally:
        assert stop(proc) == 0
    assert "***" in _clean(log.read_text())  # the URL was logged, masked


def test_connection_errors_never_show_the_password(guarded: ServerProcess, tmp_path: Path) -> None:
    wrong = _url(guarded.port, SECRET[::-1]).replace(SECRET[::-1], SECRET + "x")
    for n, url in enumerate((_url(free_port()), wrong)):
        log = tmp_path / f"mpush{n}.log"
        proc = spawn("mpush", "--redis", url, "--set", "in=q", "--set", 'out=["o"]', log=log)
        wait_for(lambda p=proc, f=log: "error=" in f.read_text() or p.poll() is not None, 20)
        stop(proc)
        _clean(log.read_text())
    status = run("status", "--redis", wrong, timeout=30)
    assert status.returncode != 0
    _clean(status.stdout + status.stderr)


BAD_SETS = [
    ("popTimeout=-1",),
    (f'redis=["redis://default:{SECRET}@127.0.0.1:1/0"]',),
    (f"redis=redis://default:{SECRET}@127.0.0.1:notaport/0", "nonsense=1"),
    ('serviceRedis={"url": "redis://default:' + SECRET + '@h:1/0"}',),
    (f"nonsense=redis://default:{SECRET}@h:1/0",),
    (f"redis://default:{SECRET}@h:1/0",),  # --set without its field name
]


@pytest.mark.parametrize("sets", BAD_SETS)
def test_config_errors_never_show_the_password(sets: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(ServiceConfig, None, {}, (f"redis={_url(1)}", *sets))
    _clean(str(caught.value))


def test_cli_config_errors_never_show_the_password() -> None:
    sets = [x for bad in BAD_SETS[1:5] for s in bad for x in ("--set", s)]
    result = run("mpush", "--redis", _url(1), *sets)
    assert result.returncode == 2 and result.stderr.count("config error:") >= 4
    _clean(result.stdout + result.stderr)
