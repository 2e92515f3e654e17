"""Helpers for the end-to-end web tests: a topology under `redline up`, raw HTTP requests."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.helpers import spawn, stop, wait_for
from tests.servers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
WEBSITE = REPO / "examples" / "website" / "redline.toml"


def fresh_db(server: ServerProcess, db: int) -> str:
    redis.Redis(port=server.port, db=db).flushdb()
    return f"redis://127.0.0.1:{server.port}/{db}"


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def topology(
    file: Path, redis_url: str, port: int, log: Path, ready: tuple[str, ...] = ("/",)
) -> Iterator[subprocess.Popen[str]]:
    """`redline up FILE` on `port` until every path in `ready` answers 200; stopped after."""
    proc = spawn("up", str(file), "--port", str(port), "--redis", redis_url, log=log)
    try:
        for path in ready:
            wait_for(lambda p=path: answers(f"http://127.0.0.1:{port}{p}"), timeout=60)  # type: ignore[misc]
        yield proc
    finally:
        code = stop(proc, timeout=30)
        assert code == 0, log.read_text()[-3000:]


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET `target` exactly as written (no client-side normalisation of ``..``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


WRK_SCRIPT = """
local paths = {%s}
local i = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; failed = 0 end
function request() i = i %% #paths + 1; return wrk.format("GET", paths[i]) end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else failed = failed + 1 end
end
function done(summary, latency, requests)
  local o, f = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); f = f + t:get("failed") end
  local e = summary.errors
  io.write(string.format("STATUS ok=%%d failed=%%d\\n", o, f))
  io.write(string.format("SOCKET connect=%%d read=%%d write=%%d timeout=%%d\\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("LATENCY p99=%%.1fms max=%%.1fms\\n",
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What wrk saw: 2xx answers, other statuses, socket errors (timeouts included)."""

    ok: int
    failed: int
    broken: int
    summary: str


class Wrk:
    """wrk over `paths` of `site` with `connections`, until `stop` (SIGINT: wrk then prints
    its summary, read by `WRK_SCRIPT`); a request unanswered within `timeout` s is an error."""

    def __init__(
        self, site: str, paths: tuple[str, ...], here: Path, connections: int, timeout: int = 10
    ) -> None:
        script = here / f"wrk-{connections}.lua"
        script.write_text(WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths))
        threads = min(2, connections)
        command = ["wrk", f"-t{threads}", f"-c{connections}", "-d600s", f"--timeout={timeout}s"]
        self.proc = subprocess.Popen(
            [*command, "-s", str(script), f"{site}/"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> LoadResult:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        status = re.search(r"STATUS ok=(\d+) failed=(\d+)", out)
        sock = re.search(r"SOCKET connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+)", out)
        assert status and sock, out
        broken = sum(int(g) for g in sock.groups())
        return LoadResult(int(status[1]), int(status[2]), broken, out.strip())


def live_pids(client: redis.Redis, ns: str) -> list[int]:
    """The pids of namespace `ns`'s registered instances whose process runs (not a zombie)."""
    pids = []
    for ident in client.lrange(f"{ns}:ids", 0, -1):
        pid = client.hget(f"{ns}:{ident.decode()}", "pid")
        if pid is not None and _running(int(pid)):
            pids.append(int(pid))
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
