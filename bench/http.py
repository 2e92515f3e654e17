"""The distributed web server against plain ASGI and nginx: wrk, 50 connections, a 1 KiB file.

Rows, measured in the same run on the same machine:
- redline: wrk → himporter → hrouter → hassets (three processes, Redis between them);
- the same with two himporter replicas sharing the port (SO_REUSEPORT): the kernel splits the
  connections, so two groups of requests move through the stages at once and both cores work
  (with one importer, the 50 connections' requests tend to travel as one batch, stage after
  stage, and the machine is not saturated);
- starlette-memory: a plain Starlette route on uvicorn returning the bytes from memory (the
  Python ASGI ceiling);
- starlette-static: Starlette's StaticFiles on uvicorn;
- nginx: serving the file, when nginx is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from redline.embedded import EmbeddedServer

SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
CONNECTIONS = 50


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int, path: str = "/1k.bin", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"], check=False
        )
        if done.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within {timeout}s")


@contextlib.contextmanager
def _process(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    log = open(cwd / "bench.log", "a")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=log, stderr=log, env={**os.environ, **(env or {})}
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wrk(port: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{SECONDS}s",
            "--latency",
            f"http://127.0.0.1:{port}/1k.bin",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rate,
        "p50": _ms(out, "50%"),
        "p99": _ms(out, "99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _ms(out: str, which: str) -> float:
    value, unit = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _redline(root: Path, url: str, importers: int = 1) -> dict[str, float]:
    port = _port()
    topology = {
        "port": port,
        "defaults": {"popTimeout": 1, "serviceNamespace": "bench:web"},
        "services": {
            "himporter": {"out": "bench:web:http", "replicas": importers},
            "hrouter": {
                "in": "bench:web:http",
                "routes": [{"path": "/(?P<path>.*)", "queue": "bench:web:assets"}],
            },
            "hassets": {"in": "bench:web:assets", "root": str(root)},
        },
    }
    (root / "up.json").write_text(json.dumps(topology))
    argv = [
        sys.executable,
        "-m",
        "redline",
        "--log-level",
        "warning",
        "up",
        "up.json",
        "--redis",
        url,
    ]
    with _process(argv, root):
        _ready(port)
        return _wrk(port)


def _uvicorn(root: Path, app: str) -> dict[str, float]:
    port = _port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        f"bench._web_apps:{app}",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    here = Path(__file__).resolve().parents[1]
    env = {"BENCH_ROOT": str(root), "PYTHONPATH": str(here)}
    with _process(argv, root, env):
        _ready(port)
        return _wrk(port)


def _nginx(root: Path) -> dict[str, float] | None:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    port = _port()
    root.chmod(0o755)  # nginx's workers drop root for www-data: they must be able to read it
    conf = root / "nginx.conf"
    conf.write_text(
        f"daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/nginx.err;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
    )
    with _process([binary, "-c", str(conf), "-p", str(root)], root):
        _ready(port)
        return _wrk(port)


def measure() -> dict[str, dict[str, float] | None]:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(port=None) as server:
        root = Path(tmp)
        (root / "1k.bin").write_bytes(os.urandom(1024))
        return {
            "redline himporter→hrouter→hassets": _redline(root, server.url),
            "redline, 2 himporter replicas (one port)": _redline(root, server.url, importers=2),
            "starlette route, bytes from memory": _uvicorn(root, "plain"),
            "starlette StaticFiles": _uvicorn(root, "static"),
            "nginx": _nginx(root),
        }


def main() -> None:
    console = Console()
    if shutil.which("wrk") is None:
        console.print("http: skipped — needs `wrk` (apt-get install wrk)")
        return
    before = os.getloadavg()[0]
    results = measure()
    ceiling = results["starlette route, bytes from memory"]
    load = f"load average {before:.1f} before, {os.getloadavg()[0]:.1f} after"
    table = Table(title=f"HTTP, 1 KiB file, wrk -t2 -c{CONNECTIONS} -d{SECONDS}s ({load})")
    for column in ("server", "req/s", "p50 ms", "p99 ms", "non-2xx", "x ASGI ceiling"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, row in results.items():
        if row is None:
            table.add_row(name, "not installed", "", "", "", "")
            continue
        ratio = row["rps"] / ceiling["rps"] if ceiling else 0
        table.add_row(
            name,
            f"{row['rps']:,.0f}",
            f"{row['p50']:.2f}",
            f"{row['p99']:.2f}",
            str(int(row["errors"])),
            f"{ratio:.2f}",
        )
    console.print(table)
