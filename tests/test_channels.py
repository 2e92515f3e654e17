"""The producers' fast paths (`redline.connection.channels`) against a real server: replies
in order, round trips shared by concurrent callers, errors kept to their caller, a killed
connection replaced, a connection per thread."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
import redis
import redis.exceptions

from redline.connection import connect, connect_sync
from redline.connection.channels import batched, held
from tests.helpers import wait_for
from tests.servers import Cluster


async def test_concurrent_calls_share_round_trips_and_get_their_own_replies(
    redis_url: str,
) -> None:
    client, watcher = connect(redis_url), redis.Redis.from_url(redis_url)
    try:
        channel = batched(client)
        await channel.call(("CLIENT", "SETNAME", "held"))
        replies = await asyncio.gather(*(channel.call(("INCR", f"n{i % 7}")) for i in range(700)))
        assert sorted(replies) == sorted(n for _ in range(7) for n in range(1, 101))
        assert [int(watcher.get(f"n{k}") or 0) for k in range(7)] == [100] * 7
        # 700 calls at once, one connection (redis-py's path would have opened dozens)
        here = str(watcher.connection_pool.connection_kwargs.get("db", 0))  # the test's own db
        me = str(watcher.client_id())
        others = [c for c in watcher.client_list() if c["db"] == here and c["id"] != me]
        assert [c["name"] for c in others] == ["held"]
        assert batched(client) is channel
    finally:
        await client.aclose()
        watcher.close()


async def test_an_error_reply_goes_to_its_caller_only(redis_url: str) -> None:
    client = connect(redis_url)
    try:
        channel = batched(client)
        await channel.call(("SET", "s", "text"))
        calls = [channel.call(("INCR", "s")), channel.call(("GET", "s")), channel.call(("PING",))]
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(done[0], redis.exceptions.ResponseError)
        assert done[1:] == [b"text", b"PONG"]
        assert await channel.call(("GET", "s")) == b"text"  # the connection is still good
    finally:
        await client.aclose()


async def test_a_killed_connection_is_replaced_on_the_next_call(redis_url: str) -> None:
    client, killer = connect(redis_url), redis.Redis.from_url(redis_url)
    try:
        channel = batched(client)
        await channel.call(("CLIENT", "SETNAME", "held"))
        assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
        assert await channel.call(("SET", "after", "1")) == b"OK"
        assert killer.get("after") == b"1"
    finally:
        await client.aclose()
        killer.close()


def test_blocking_calls_keep_a_connection_per_thread(redis_url: str) -> None:
    client, killer = connect_sync(redis_url), redis.Redis.from_url(redis_url)
    try:
        channel = held(client)
        names: list[int] = []

        def work(n: int) -> None:
            for _ in range(50):
                channel.call(("INCR", "counted"))
            names.append(channel.call(("CLIENT", "ID")))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert killer.get("counted") == b"200"
        assert len(set(names)) == 4  # four threads, four connections
        with pytest.raises(redis.exceptions.ResponseError):
            channel.call(("INCR", "not a number", "extra"))
        assert channel.call(("PING",)) == b"PONG"
        killer.client_kill_filter(_type="normal", skipme=True)
        assert channel.call(("INCR", "counted")) == 201  # a fresh connection, tried again
    finally:
        client.close()
        killer.close()


def test_blocking_calls_one_behind_the_other(redis_url: str) -> None:
    client, other = connect_sync(redis_url), redis.Redis.from_url(redis_url)
    try:
        channel = held(client)
        made: list[int] = []

        def commands() -> Iterator[tuple[str, ...]]:
            for n in range(5):
                made.append(n)
                yield ("RPUSH", "ordered", str(n))

        for n, reply in enumerate(channel.calls(commands())):
            assert reply == n + 1
            assert len(made) == min(n + 2, 5)  # the next was written before this was read
        assert other.lrange("ordered", 0, -1) == [b"0", b"1", b"2", b"3", b"4"]
        other.set("text", "x")
        failing = [("SET", "before", "1"), ("INCR", "text"), ("SET", "after", "1")]
        with pytest.raises(redis.exceptions.ResponseError):
            list(channel.calls(failing))
        assert other.get("before") == b"1" and other.get("after") == b"1"  # written already
        assert channel.call(("PING",)) == b"PONG"  # the connection was dropped, a fresh one
    finally:
        client.close()
        other.close()


def test_blocking_calls_survive_the_pool_disconnecting_their_connection(redis_url: str) -> None:
    """The held connection's socket is read and written directly: a pool that closes its
    connections (`disconnect`, as a client's close does) leaves the next call to reopen the same
    connection, not to fail or to take a second one; a read past the client's socket timeout
    raises redis-py's TimeoutError and the connection after it is a fresh one."""
    client = connect_sync(redis_url, socket_timeout=0.5)
    watcher = redis.Redis.from_url(redis_url)
    try:
        channel = held(client)
        assert channel.call(("CLIENT", "SETNAME", "kept")) == b"OK"
        client.connection_pool.disconnect()
        assert channel.call(("INCR", "reopened")) == 1
        assert channel.call(("CLIENT", "GETNAME")) is None  # a new session on the same object
        assert channel.run([("INCR", "reopened"), ("INCR", "reopened")]) == [2, 3]
        with pytest.raises(redis.exceptions.TimeoutError):
            channel.call(("BLPOP", "nothing-comes", "2"))
        assert channel.call(("INCR", "reopened")) == 4
        # an error reply redis-py counts as the connection's is raised, not handed back
        with pytest.raises(redis.exceptions.AuthenticationError):
            channel.call(("AUTH", "nobody", "wrong"))
        with pytest.raises(redis.exceptions.AuthenticationError):
            channel.run([("AUTH", "nobody", "wrong")])
        assert channel.call(("INCR", "reopened")) == 5
        here = str(watcher.connection_pool.connection_kwargs.get("db", 0))  # the test's own db
        me = str(watcher.client_id())
        assert len([c for c in watcher.client_list() if c["db"] == here and c["id"] != me]) == 1
    finally:
        client.close()
        watcher.close()


def test_commands_run_together_after_a_blocking_one(redis_url: str) -> None:
    """`Held.run` writes every command at once: the one after a BLMOVE runs when it returns
    (so a queue's wait and the pop that claims what came are one round trip); a command's
    error comes back in its place and leaves the connection in use; a killed one is
    replaced and the commands tried on the fresh one."""
    client, other = connect_sync(redis_url), redis.Redis.from_url(redis_url)
    try:
        channel = held(client)
        first = channel.call(("CLIENT", "ID"))
        got: list[object] = []
        waiter = threading.Thread(
            target=lambda: got.extend(
                channel.run(
                    [("BLMOVE", "src", "dst", "RIGHT", "LEFT", 10), ("LRANGE", "dst", 0, -1)]
                )
            )
        )
        waiter.start()
        wait_for(lambda: int(other.info("clients")["blocked_clients"]) == 1)
        other.lpush("src", "x")
        waiter.join(timeout=10)
        assert got == [b"x", [b"x"]]  # the LRANGE saw what the BLMOVE moved
        other.set("text", "x")
        replies = channel.run([("SET", "t", "1"), ("INCR", "text"), ("GET", "t")])
        assert replies[0] == b"OK"  # raw replies, as the connection reads them
        assert isinstance(replies[1], redis.exceptions.ResponseError) and replies[2] == b"1"
        assert channel.call(("CLIENT", "ID")) == first  # the same connection all along
        other.client_kill_filter(_id=first)
        assert channel.run([("PING",), ("PING",)]) == [b"PONG", b"PONG"]
        assert channel.call(("CLIENT", "ID")) != first
    finally:
        client.close()
        other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_takes_its_own_connection(redis_url: str) -> None:
    """The kept connection is the parent's: a child that used it would read the parent's
    replies. The child must notice it was forked (the pid is renewed at fork, not asked for
    on every call) and open its own."""
    client, reader = connect_sync(redis_url), redis.Redis.from_url(redis_url)
    try:
        channel = held(client)
        parent = channel.call(("CLIENT", "ID"))
        child = os.fork()
        if child == 0:  # the child: report its connection's id, then leave at once
            code = 1
            try:
                reader.rpush("child:ids", channel.call(("CLIENT", "ID")))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        [child_id] = reader.lrange("child:ids", 0, -1)
        assert int(child_id) != parent
        assert channel.call(("CLIENT", "ID")) == parent  # the parent's is still its own
    finally:
        client.close()
        reader.close()


async def test_a_cluster_client_takes_redis_pys_path(cluster: Cluster, prefix: str) -> None:
    client = connect(cluster.url)
    try:
        channel = batched(client)
        assert not channel.direct
        assert await channel.call(("SET", f"{prefix}:k", "v")) is True
        assert await client.get(f"{prefix}:k") == b"v"
    finally:
        await client.aclose()
