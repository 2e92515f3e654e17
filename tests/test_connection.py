from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import redis.exceptions

from redline.connection.client import (
    _PACKER,
    AsyncClient,
    HeldConnection,
    _HiredisPacking,
    connect,
    connect_sync,
    mask_url,
    parse_url,
)
from redline.connection.pool import PoolTimeoutError
from redline.errors import ConnectionURLError
from tests.servers import Cluster, ServerProcess

SELFTEST_MOVE = Path(__file__).parent / "lua" / "_selftest_move.lua"


def test_url_forms() -> None:
    plain = parse_url("redis://alice:s3cret@db.example:6380/4")
    assert (plain.mode, plain.username, plain.password, plain.db) == (
        "standalone",
        "alice",
        "s3cret",
        4,
    )
    assert parse_url("rediss://h:6380/0").tls
    assert parse_url("unix:///run/redis.sock?db=3").db == 3
    cluster = parse_url("redis+cluster://h1:7000,h2:7001")
    assert cluster.mode == "cluster" and cluster.nodes == (("h1", 7000), ("h2", 7001))
    sentinel = parse_url("redis+sentinel://:pw@s1:26379,s2:26379/mymaster/2")
    assert (sentinel.service, sentinel.db, sentinel.password) == ("mymaster", 2, "pw")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://localhost", "unsupported Redis URL scheme"),
        ("redis+cluster://", "no host:port"),
        ("redis+sentinel://h:26379", "names no service"),
        ("redis://h:6379/abc", "database must be a number"),
        ("redis+cluster://h:notaport", "expected host:port"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConnectionURLError, match=says):
        parse_url(url)


def test_passwords_are_masked() -> None:
    assert mask_url("redis://u:topsecret@h:1/0") == "redis://u:***@h:1/0"
    with pytest.raises(ConnectionURLError) as err:
        parse_url("ftp://u:topsecret@h")
    assert "topsecret" not in str(err.value)


async def test_standalone_and_sync_clients(redis_url: str) -> None:
    client = connect(redis_url)
    await client.set("k", "v")
    assert connect_sync(redis_url).get("k") == b"v"
    await client.aclose()


async def test_acl_user(server: ServerProcess, redis_url: str) -> None:
    admin = server.client()
    admin.acl_setuser(
        "queueuser", enabled=True, passwords=["+pw1"], keys=["q:*"], commands=["+@all"]
    )
    try:
        client = connect(redis_url.replace("redis://", "redis://queueuser:pw1@"))
        assert await client.lpush("q:a", "x") == 1
        await client.aclose()
    finally:
        admin.acl_deluser("queueuser")


async def test_cluster_client_packs_with_hiredis_on_every_node(
    cluster: Cluster, prefix: str
) -> None:
    client = connect(cluster.url)
    try:
        key = f"{{{prefix}}}:l"
        await client.rpush(key, b"\x00\xff", "ünï", 7, memoryview(b"mv"), bytearray(b"ba"))
        got = await client.lrange(key, 0, -1)
        assert got == [b"\x00\xff", "ünï".encode(), b"7", b"mv", b"ba"]
        nodes = client.get_nodes()  # the startup node and the nodes found from it
        assert len(nodes) == 3
        assert all(issubclass(node.connection_class, _HiredisPacking) for node in nodes)
        opened = [type(c) for node in nodes for c in node._connections]
        assert opened and all(issubclass(kind, _HiredisPacking) for kind in opened)
    finally:
        await client.aclose()


async def test_script_on_cluster_with_shared_hash_tag(cluster: Cluster, prefix: str) -> None:
    client = connect(cluster.url)
    keys = [f"{{{prefix}}}:a", f"{{{prefix}}}:b"]
    await client.lpush(keys[0], "m")
    # lmove-like atomic move through a script object (EVALSHA, as the registry runs its
    # scripts), keys in one slot. The script is the tests' own: it does not ship.
    move = client.register_script(SELFTEST_MOVE.read_text())
    moved = await move(keys=keys)
    assert moved == b"m" and await client.lrange(keys[1], 0, -1) == [b"m"]
    await client.aclose()


VALUES = [b"", b"\x00\xff binary", "ünïcode", 42, 2.5, b"x" * 100_000, memoryview(b"mv")]
STORED = [b"", b"\x00\xff binary", "ünïcode".encode(), b"42", b"2.5", b"x" * 100_000, b"mv"]


async def test_commands_are_packed_by_hiredis_and_arrive_intact(
    redis_url: str, prefix: str
) -> None:
    client = connect(redis_url)
    try:
        assert "_HiredisPacking" in [
            c.__name__ for c in client.connection_pool.connection_class.__mro__
        ]
        await client.rpush(f"{prefix}:l", *VALUES, bytearray(b"ba"))
        assert await client.lrange(f"{prefix}:l", 0, -1) == [*STORED, b"ba"]
        pipe = client.pipeline(transaction=False)
        pipe.set(f"{prefix}:k", "v").get(f"{prefix}:k").execute_command("CONFIG GET", "maxmemory")
        assert (await pipe.execute())[:2] == [True, b"v"]
    finally:
        await client.aclose()


async def test_held_connection_replies_in_order_with_errors_as_values(
    redis_url: str, prefix: str
) -> None:
    client = connect(redis_url)
    link = HeldConnection(client)
    big = bytes(range(256)) * 20_000  # 5 MB: many reads for one reply
    try:
        set_, wrong, got, missing, empty = await link.run(
            [
                ("SET", f"{prefix}:k", big),
                ("LPUSH", f"{prefix}:k", "x"),
                ("GET", f"{prefix}:k"),
                ("FCALL", "no_such_function", 0),
                ("LRANGE", f"{prefix}:none", 0, -1),
            ]
        )
        assert set_ == b"OK" and got == big and empty == []
        assert isinstance(wrong, redis.exceptions.ResponseError) and "WRONGTYPE" in str(wrong)
        assert isinstance(missing, redis.exceptions.ResponseError)
        assert await link.run([("PING",)]) == [b"PONG"]  # the same link goes on
    finally:
        await asyncio.wait_for(client.aclose(), 5)  # closing the client closes the link


async def _blocked(client: AsyncClient, ident: int) -> bool:
    """Whether the connection with CLIENT ID `ident` is blocked in a command."""
    [found] = await client.client_list(client_id=[ident])
    return "b" in found["flags"]


async def test_held_connection_starts_over_after_a_kill_or_a_cancel(
    redis_url: str, prefix: str
) -> None:
    client = connect(redis_url)
    link = HeldConnection(client)
    try:
        [first] = await link.run([("CLIENT", "ID")])
        # Killed with a call in hand: that call fails (a link killed while idle is replaced
        # before the next call is written: tests/hardening/test_restart_held.py).
        in_hand = asyncio.create_task(link.run([("BLPOP", f"{prefix}:q", 5)]))
        async with asyncio.timeout(30):
            while not await _blocked(client, first):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        await client.client_kill_filter(_id=first)
        with pytest.raises(redis.exceptions.ConnectionError):
            await in_hand
        [second] = await link.run([("CLIENT", "ID")])
        assert second != first
        # Cancelled while waiting: the late reply must not be read as the next call's.
        waiting = asyncio.create_task(link.run([("BLPOP", f"{prefix}:q", 5)]))
        async with asyncio.timeout(30):  # the BLPOP has reached the server and blocks there
            while not await _blocked(client, second):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await client.lpush(f"{prefix}:q", "late")
        assert await link.run([("ECHO", "mine")]) == [b"mine"]
    finally:
        await asyncio.wait_for(client.aclose(), 5)


async def test_held_connection_decodes_for_a_decoding_client(redis_url: str, prefix: str) -> None:
    client = connect(redis_url, decode_responses=True)
    try:
        await client.set(f"{prefix}:k", "ünï")
        assert await HeldConnection(client).run([("GET", f"{prefix}:k")]) == ["ünï"]
    finally:
        await client.aclose()


async def test_held_connection_skips_resp3_pushes(redis_url: str, prefix: str) -> None:
    """A RESP3 push (here a client-side caching invalidation) is not a reply: the call after
    it still gets its own answer."""
    client, other = connect(redis_url, protocol=3), connect(redis_url)
    link = HeldConnection(client)
    try:
        await other.set(f"{prefix}:k", "v1")
        assert await link.run([("CLIENT", "TRACKING", "ON"), ("GET", f"{prefix}:k")]) == [
            b"OK",
            b"v1",
        ]
        await other.set(f"{prefix}:k", "v2")  # the server pushes an invalidation to the link
        await asyncio.sleep(0.1)
        assert await link.run([("ECHO", "after")]) == [b"after"]
    finally:
        await client.aclose()
        await other.aclose()


def test_blocking_commands_are_packed_by_hiredis_and_arrive_intact(
    redis_url: str, prefix: str
) -> None:
    client = connect_sync(redis_url)
    try:
        client.rpush(f"{prefix}:l", *VALUES, bytearray(b"ba"))
        assert client.lrange(f"{prefix}:l", 0, -1) == [*STORED, b"ba"]
        pipe = client.pipeline(transaction=False)
        pipe.set(f"{prefix}:k", "v").get(f"{prefix}:k").execute_command("CONFIG GET", "maxmemory")
        assert pipe.execute()[:2] == [True, b"v"]
        connection = client.connection_pool.get_connection()
        try:
            assert connection._command_packer is _PACKER  # the connection it really opened
        finally:
            client.connection_pool.release(connection)
    finally:
        client.close()


async def test_a_gather_of_a_thousand_enqueues_waits_for_connections(redis_url: str) -> None:
    """More calls in flight at once than the pool has connections wait for one to come free
    (issue 28: the 101st failed with MaxConnectionsError)."""
    from redline.jobs import enqueue
    from tests.jobs import tasks

    client = connect(redis_url)
    try:
        jobs = await asyncio.gather(*(enqueue(client, tasks.add, n, 1) for n in range(1000)))
        assert len({job.id for job in jobs if job is not None}) == 1000
        assert await client.llen("t:jobs") == 1000
    finally:
        await client.aclose()


async def test_a_pool_busy_for_too_long_says_what_to_do(redis_url: str) -> None:
    # No read timeout and a BLPOP without one: the only connection stays held until the
    # cancel below, however slow the machine (redis-py's default 5 s read timeout, which
    # applies to blocking commands too, once ended a 5 s BLPOP before the ping was refused).
    client = connect(redis_url, max_connections=1, pool_timeout=0.2, socket_timeout=None)
    watcher = connect(redis_url)
    try:
        blocked = asyncio.create_task(client.blpop(["never"], timeout=0))
        while "cmd=blpop" not in str(await watcher.execute_command("CLIENT", "LIST")):
            assert not blocked.done(), blocked
            await asyncio.sleep(0.01)
        with pytest.raises(PoolTimeoutError, match=r"all 1 connections .* max_connections=N"):
            await client.ping()
        blocked.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await blocked
    finally:
        await client.aclose()
        await watcher.aclose()


def test_the_blocking_client_waits_for_connections_too(redis_url: str) -> None:
    import concurrent.futures

    client = connect_sync(redis_url, max_connections=2)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda n: client.incr("n"), range(200)))[-1] > 0
    assert client.get("n") == b"200"
    client.close()
