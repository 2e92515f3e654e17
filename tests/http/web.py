"""Helpers for the end-to-end web tests: a topology under `redline up`, raw HTTP requests."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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
