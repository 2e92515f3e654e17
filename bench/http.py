"""The distributed web server against plain ASGI and nginx: wrk, 50 connections, a 1 KiB file;
then, on each server, the latency at a fixed offered rate (bench/_paced.py) and the server's
CPU per request meanwhile (at that rate a batch holds a request or two: its fixed costs are paid
per request, and that CPU against the machine's cores is what the tail follows).

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import _paced
from redline.connection.embedded import EmbeddedServer

SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
CONNECTIONS = 50
# Then, on the same server, latency at a fixed offered rate (bench/_paced.py).
PACED_RATE = float(os.environ.get("BENCH_HTTP_PACED_RATE", "1000"))
PACED_SECONDS = float(os.environ.get("BENCH_HTTP_PACED_SECONDS", "5"))
PACED_OVER = 1.2  # only a server whose wrk rate is this much above PACED_RATE is offered it


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
def _process(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log = open(cwd / "bench.log", "a")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=log, stderr=log, env={**os.environ, **(env or {})}
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _processes(root_pid: int, extra: dict[int, str]) -> dict[int, str]:
    """`root_pid` and its descendants, each named by its role (the redline service it runs,
    or its program), plus `extra` ({pid: name}); empty where there is no /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            roles = [a for a in argv if a in ("himporter", "hrouter", "hassets", "uvicorn")]
            if roles:
                found[pid] = roles[0]
        todo += [child for child, parent in parents.items() if parent == pid]
    return {**found, **extra}


def _usage(pids: dict[int, str]) -> dict[int, tuple[float, int]]:
    """Per pid: CPU seconds (user + system) and context switches so far."""
    ticks, usage = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            switches = sum(int(s.split()[1]) for s in status if "ctxt_switches" in s)
            usage[pid] = ((int(fields[11]) + int(fields[12])) / ticks, switches)
    return usage


def _wrk(port: int, watch: dict[int, str] | None = None) -> dict[str, float]:
    """One wrk run; with `watch` ({pid: role}), also each role's CPU µs and the context
    switches per request ("cpu:<role>", "wakeups")."""
    before = _usage(watch or {})
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
    after = _usage(watch or {})
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    paced = _paced_row(port, watch or {}) if rate >= PACED_OVER * PACED_RATE else {}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    row = {
        "rps": rate,
        "avg": _ms(out, "Latency"),
        "p50": _ms(out, "50%"),
        "p99": _ms(out, "99%"),
        "errors": int(errors.group(1)) if errors else 0,
        **{f"paced:{k}": v for k, v in paced.items()},
    }
    requests = rate * SECONDS
    for pid, role in (watch or {}).items():
        if pid in before and pid in after and requests:
            cpu = (after[pid][0] - before[pid][0]) / requests * 1e6
            row[f"cpu:{role}"] = row.get(f"cpu:{role}", 0.0) + cpu
            row["wakeups"] = row.get("wakeups", 0.0) + (after[pid][1] - before[pid][1]) / requests
    return row


def _paced_row(port: int, watch: dict[int, str]) -> dict[str, float]:
    """The latency at PACED_RATE offered (bench/_paced.py) and, where /proc tells, the CPU µs
    per request of the `watch`ed processes meanwhile ("cpu"): at this rate a batch holds a
    request or two, so a batch's fixed costs are paid per request, and the processes' CPU
    (against the machine's cores) is what their tail follows."""
    before = _usage(watch)
    row = _paced.offered(port, PACED_RATE, PACED_SECONDS)
    after = _usage(watch)
    if before and after:
        spent = sum(after[pid][0] - before[pid][0] for pid in before if pid in after)
        row["cpu"] = spent / (PACED_RATE * PACED_SECONDS) * 1e6
    return row


def _ms(out: str, which: str) -> float:
    value, unit = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _redline(root: Path, url: str, server_pid: int, importers: int = 1) -> dict[str, float]:
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
    with _process(argv, root) as up:
        _ready(port)
        return _wrk(port, _processes(up.pid, {server_pid: "valkey"}))


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
    with _process(argv, root, env) as proc:
        _ready(port)
        return _wrk(port, _processes(proc.pid, {}))


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


ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
REDLINE = "redline himporter→hrouter→hassets"
REDLINE_2 = "redline, 2 himporter replicas (one port)"
CEILING = "starlette route, bytes from memory"


def measure() -> tuple[dict[str, list[dict[str, float]] | None], list[dict[str, float]]]:
    """Every row's runs, and per round the ratio of each redline row to the ceiling.

    The ceiling and the redline rows are measured in interleaved rounds (ceiling, redline,
    redline with 2 importers, then again): on a shared VM a run can be 25 % slower than the
    one a minute before, so a ratio is only taken between runs of the same round and the table
    shows medians. The other references run once."""
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(port=None) as server:
        root = Path(tmp)
        (root / "1k.bin").write_bytes(os.urandom(1024))
        runs: dict[str, list[dict[str, float]] | None] = {CEILING: [], REDLINE: [], REDLINE_2: []}
        ratios: list[dict[str, float]] = []
        for _ in range(ROUNDS):
            ceiling = _uvicorn(root, "plain")
            one = _redline(root, server.url, server.pid)
            two = _redline(root, server.url, server.pid, importers=2)
            for name, row in ((CEILING, ceiling), (REDLINE, one), (REDLINE_2, two)):
                runs[name].append(row)  # type: ignore[union-attr]
            ratios.append(
                {REDLINE: one["rps"] / ceiling["rps"], REDLINE_2: two["rps"] / ceiling["rps"]}
            )
        runs["starlette StaticFiles"] = [_uvicorn(root, "static")]
        nginx = _nginx(root)
        runs["nginx"] = [nginx] if nginx else None
        return runs, ratios


def _median(rows: list[dict[str, float]], field: str) -> float:
    return statistics.median(row[field] for row in rows)


def _paced_table(runs: dict[str, list[dict[str, float]] | None]) -> Table:
    """Each server's latency at PACED_RATE requests a second offered on a clock (medians of
    the rounds), measured after its wrk run on the same server."""
    table = Table(
        title=f"latency at {PACED_RATE:,.0f} req/s offered (open loop, {PACED_SECONDS:g} s after"
        " each wrk run; bench/_paced.py)",
        caption="CPU µs/req: the server's processes meanwhile (redline: its services and"
        " Valkey), from /proc; at this rate a batch holds a request or two",
    )
    columns = (
        "server",
        "p50 ms",
        "p99 ms",
        "errors",
        "client late ms",
        "connections",
        "CPU µs/req",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, rows in runs.items():
        paced = [row for row in rows or [] if "paced:p99" in row]
        if not paced:
            why = "not installed" if not rows else f"not measured: under {PACED_OVER:g}x the rate"
            table.add_row(name, why, "", "", "", "", "")
            continue
        table.add_row(
            name,
            f"{_median(paced, 'paced:p50'):.2f}",
            f"{_median(paced, 'paced:p99'):.2f}",
            str(int(sum(r["paced:errors"] for r in paced))),
            f"{max(r['paced:late'] for r in paced):.1f}",
            f"{max(r['paced:connections'] for r in paced):.0f}",
            f"{_median(paced, 'paced:cpu'):.0f}" if "paced:cpu" in paced[0] else "",
        )
    return table


def main() -> None:
    console = Console()
    if shutil.which("wrk") is None:
        console.print("http: skipped — needs `wrk` (apt-get install wrk)")
        return
    before = os.getloadavg()[0]
    runs, ratios = measure()
    ceiling = _median(runs[CEILING] or [], "rps")
    load = f"load average {before:.1f} before, {os.getloadavg()[0]:.1f} after"
    table = Table(
        title=f"HTTP, 1 KiB file, wrk -t2 -c{CONNECTIONS} -d{SECONDS}s, medians of {ROUNDS}"
        f" interleaved rounds ({load})"
    )
    for column in ("server", "req/s", "p50 ms", "p99 ms", "p99/avg", "non-2xx", "x ASGI ceiling"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, rows in runs.items():
        if not rows:
            table.add_row(name, "not installed", "", "", "", "", "")
            continue
        if name in (REDLINE, REDLINE_2):
            per_round = sorted(r[name] for r in ratios)
            ratio = f"{statistics.median(per_round):.2f} ({per_round[0]:.2f}-{per_round[-1]:.2f})"
        else:
            ratio = f"{_median(rows, 'rps') / ceiling:.2f}"
        table.add_row(
            name,
            f"{_median(rows, 'rps'):,.0f}",
            f"{_median(rows, 'p50'):.2f}",
            f"{_median(rows, 'p99'):.2f}",
            f"{statistics.median(r['p99'] / r['avg'] for r in rows):.2f}",
            str(int(sum(r["errors"] for r in rows))),
            ratio,
        )
    console.print(table)
    console.print(
        "x ASGI ceiling: for the redline rows, the median of the per-round ratios (range in"
        " brackets); the ceiling row is measured in every round. p99/avg: the tail's shape"
        f" (wrk keeps {CONNECTIONS} requests in flight, so the average latency is {CONNECTIONS}"
        " / req/s and a p99 follows the rate: compare the shapes, not the p99s)."
    )
    console.print(_paced_table(runs))
    if any("wakeups" in row for row in runs.get(REDLINE) or []):  # Linux: from /proc
        console.print(_cpu_table(runs))


ROLES = ("uvicorn", "himporter", "hrouter", "hassets", "valkey")


def _cpu_table(runs: dict[str, list[dict[str, float]] | None]) -> Table:
    """Where the CPU goes: each process role's CPU µs per request, and the context switches
    (wake-ups) per request, medians over the rounds; from /proc, so empty elsewhere."""
    table = Table(
        title="CPU µs per request by process, and context switches (wake-ups) per request;"
        " from /proc, medians of the rounds"
    )
    for column in ("row", *ROLES, "total", "wake-ups"):
        table.add_column(column, justify="left" if column == "row" else "right")
    for name, label in ((CEILING, "ceiling"), (REDLINE, "redline"), (REDLINE_2, "2 importers")):
        rows = runs.get(name) or []
        if not rows or "wakeups" not in rows[0]:
            continue
        cells = [
            f"{_median(rows, f'cpu:{role}'):.0f}" if f"cpu:{role}" in rows[0] else ""
            for role in ROLES
        ]
        total = statistics.median(
            sum(v for k, v in row.items() if k.startswith("cpu:")) for row in rows
        )
        table.add_row(label, *cells, f"{total:.0f}", f"{_median(rows, 'wakeups'):.2f}")
    return table
