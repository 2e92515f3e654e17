"""Services over TLS end to end: real processes on a TLS-only redis-server (no plain port),
reaching it by a ``rediss://…?ssl_cert_reqs=required&ssl_ca_certs=<test CA>`` URL.

mpush fans messages out (and recovers from a SIGKILL with a message in hand), a jobs worker
drains its queue, and a ReliableQueue producer and consumer pass messages; every message is
counted.
(The embedded Valkey is built without TLS: these tests use Debian's redis-server.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.connection import HeldConnection, connect, connect_sync
from redline.connection.embedded import reachable
from redline.jobs.document import JobDocument
from redline.keys import derived
from redline.queue import ReliableQueue
from redline.services.pending import registry_key
from tests.conftest import needs_tool
from tests.hardening.support import actor, recorded
from tests.helpers import park_and_kill, spawn, stop, wait_for
from tests.jobs import tasks as t
from tests.servers import TlsCluster, TlsServer, make_certs

pytestmark = [needs_tool("redis-server", "redis-server"), needs_tool("openssl", "openssl")]

IN, OUTS = "{tls}:in", ["{tls}:a", "{tls}:b"]
N = 2000


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    certs = tmp_path_factory.mktemp("certs")
    make_certs(certs)
    srv = TlsServer(certs).start()
    yield srv
    srv.close()


@pytest.fixture
def client(tls: TlsServer) -> Iterator[redis.Redis]:
    """A TLS client on the server's db 0, emptied before each test."""
    client = tls.client()
    client.flushdb()
    yield client
    client.close()


def test_the_server_has_no_plain_port(tls: TlsServer, client: redis.Redis) -> None:
    assert client.config_get("port") == {"port": "0"}
    assert not reachable("127.0.0.1", tls.port)  # a plain-text PING gets no answer


def _mpush(tls: TlsServer, log: Path, *extra: str) -> subprocess.Popen[str]:
    sets = ["--set", f"in={IN}", "--set", f"out={json.dumps(OUTS)}", *extra]
    return spawn("mpush", "--redis", tls.url, *sets, log=log)


def _push_all(client: redis.Redis, messages: list[bytes], step: int = 200) -> None:
    for start in range(0, len(messages), step):
        client.lpush(IN, *messages[start : start + step])


def test_mpush_over_tls_delivers_every_message_once(
    tls: TlsServer, client: redis.Redis, tmp_path: Path
) -> None:
    messages = [f"m{i:05d}".encode() for i in range(N)]
    log = tmp_path / "mpush.log"
    proc = _mpush(tls, log)
    try:
        _push_all(client, messages)
        wait_for(lambda: all(client.llen(o) == N for o in OUTS), timeout=60)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    for out in OUTS:
        assert sorted(client.lrange(out, 0, -1)) == messages
    assert client.llen(IN) == 0


def test_mpush_over_tls_recovers_from_sigkill(
    tls: TlsServer, client: redis.Redis, tmp_path: Path
) -> None:
    """SIGKILLed with a message in hand, restarted: the new instance takes over the dead one's
    pending message (once its lifecycle hash expires, 2 s) and every message reaches every
    output."""
    messages = [f"k{i:05d}".encode() for i in range(5 * N)]
    log = tmp_path / "mpush.log"
    extra = ("--set", "batch=2", "--set", "serviceExpire=2", "--set", "serviceRenew=0.5")
    proc = _mpush(tls, log, *extra)
    base, probes = derived(IN, "pending"), list[bytes]()
    try:
        _push_all(client, messages[: len(messages) // 2])
        [ident] = wait_for(lambda: client.hkeys(registry_key(base)), timeout=60)
        killed = None
        while killed is None:  # a message parked in its pending list when it dies
            wait_for(lambda: client.llen(IN) == 0, timeout=60)
            probes.append(f"p{len(probes)}".encode())
            killed = park_and_kill(client, IN, base, {ident.decode(): proc}, probes[-1])
        _push_all(client, messages[len(messages) // 2 :])  # more waiting for the new instance
        proc = _mpush(tls, log, *extra)
        wanted = set(messages) | set(probes)
        wait_for(lambda: all(wanted <= set(client.lrange(o, 0, -1)) for o in OUTS), timeout=60)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    assert f"recovered={killed[1]} from dead instance={ident.decode()}" in log.read_text()
    for out in OUTS:
        got = client.lrange(out, 0, -1)
        print(f"{out}: {len(got)} pushed, {len(got) - len(set(got))} twice")
        assert set(got) == wanted  # every message at least once, nothing else
    assert client.llen(IN) == 0


def test_worker_over_tls_runs_every_job(
    tls: TlsServer, client: redis.Redis, tmp_path: Path
) -> None:
    jobs = 100
    docs = [JobDocument(t.count.name, (tls.url, n), queue="t:count").encode() for n in range(jobs)]
    client.lpush("t:count", *docs)
    log = tmp_path / "worker.log"
    proc = spawn("worker", "tests.jobs.tasks", "--redis", tls.url, "-q", "t:count", log=log)
    try:
        wait_for(lambda: client.scard("t:done") == jobs, timeout=60)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    assert {int(n) for n in client.smembers("t:done")} == set(range(jobs))
    assert int(client.get("t:runs") or 0) == jobs  # each ran once: no crash, no redelivery


def test_reliable_queue_over_tls_passes_every_message(
    tls: TlsServer, client: redis.Redis, tmp_path: Path
) -> None:
    sent, got = tmp_path / "sent.txt", tmp_path / "got.txt"
    producer = actor("produce", tls.url, "{tls}:q", str(sent), "p", log=tmp_path / "p.log")
    consumer = actor("consume", tls.url, "{tls}:q", str(got), log=tmp_path / "c.log")
    try:
        wait_for(lambda: recorded(got).total() >= 1000, timeout=60)
    finally:
        assert stop(producer) == 0, (tmp_path / "p.log").read_text()[-3000:]
    acked = recorded(sent)
    try:
        wait_for(lambda: set(acked) <= set(recorded(got)), timeout=60)
    finally:
        assert stop(consumer) == 0, (tmp_path / "c.log").read_text()[-3000:]
    assert recorded(got) == acked  # exactly the acknowledged messages, each once
    assert client.llen("{tls}:q") == 0


async def test_a_tls_cluster(tmp_path: Path) -> None:
    """A cluster whose nodes speak TLS only (clients and the cluster bus): a ReliableQueue
    passes messages, a held connection works, and mpush runs as a real process on it."""
    make_certs(tmp_path)
    cluster = TlsCluster(tmp_path).start()
    try:
        client = connect(cluster.url)
        queue = ReliableQueue(client)
        ids = await queue.push(IN, *[f"q{i}".encode() for i in range(50)])
        got = await queue.pop(IN, count=100)
        assert sorted(await queue.ack(*got)) == sorted(ids)
        held = HeldConnection(client)
        assert await held.run([("LPUSH", "{tls}:held", "x"), ("LRANGE", "{tls}:held", 0, -1)]) == [
            1,
            [b"x"],
        ]
        await client.aclose()

        sync = connect_sync(cluster.url)
        messages = [f"c{i:04d}".encode() for i in range(500)]
        log = tmp_path / "mpush.log"
        sets = ["--set", f"in={IN}", "--set", f"out={json.dumps(OUTS)}"]
        proc = spawn("mpush", "--redis", cluster.url, *sets, log=log)
        try:
            sync.lpush(IN, *messages)
            wait_for(lambda: all(sync.llen(o) == len(messages) for o in OUTS), timeout=60)
        finally:
            assert stop(proc) == 0, log.read_text()[-3000:]
        for out in OUTS:
            assert sorted(sync.lrange(out, 0, -1)) == messages
        sync.close()
    finally:
        cluster.close()
