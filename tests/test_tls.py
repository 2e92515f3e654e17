"""TLS (rediss://) end to end, against Debian's redis-server (the embedded Valkey has no TLS)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions

from redline.connection import HeldConnection, connect, connect_sync
from tests.conftest import needs_tool
from tests.servers import ServerProcess, TlsServer, free_port, make_certs

pytestmark = [needs_tool("redis-server", "redis-server"), needs_tool("openssl", "openssl")]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(TLS port, certificate directory) of a redis-server speaking TLS with our test CA."""
    certs = tmp_path_factory.mktemp("certs")
    make_certs(certs)
    tls_port = free_port()
    srv = ServerProcess(
        binary=shutil.which("redis-server"),
        config={
            "tls-port": tls_port,
            "tls-cert-file": certs / "server.pem",
            "tls-key-file": certs / "server.key",
            "tls-ca-cert-file": certs / "ca.pem",
            "tls-auth-clients": "no",
        },
    ).start()
    yield tls_port, certs
    srv.close()


async def test_rediss_with_our_ca(tls_server: tuple[int, Path]) -> None:
    port, certs = tls_server
    ca = certs / "ca.pem"
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    client = connect(url)
    await client.set("tls", "yes")
    assert await client.get("tls") == b"yes"
    assert await HeldConnection(client).run([("GET", "tls"), ("PING",)]) == [b"yes", b"PONG"]
    await client.aclose()
    assert connect_sync(url).get("tls") == b"yes"


def test_rediss_refuses_an_unknown_ca(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    client = connect_sync(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required")
    with pytest.raises(Exception, match=r"(?i)certificate"):
        client.ping()


async def test_client_certificates(tmp_path: Path) -> None:
    """A server that asks for client certificates (tls-auth-clients yes) accepts a client
    whose URL names its certificate and key, and refuses one without."""
    make_certs(tmp_path)
    srv = TlsServer(tmp_path, {"tls-auth-clients": "yes"}).start()
    try:
        client = connect(srv.mutual_url)
        await client.set("mtls", "yes")
        assert await HeldConnection(client).run([("GET", "mtls")]) == [b"yes"]
        await client.aclose()
        assert connect_sync(srv.mutual_url).get("mtls") == b"yes"
        with pytest.raises(redis.exceptions.ConnectionError):  # the handshake is cut off
            connect_sync(srv.url, socket_timeout=5).ping()
    finally:
        srv.close()
