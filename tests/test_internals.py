"""The private APIs of redis-py that redline.connection.internals relies on, checked
for shape against the installed releases: a failure names the internal that changed."""

from __future__ import annotations

import asyncio
import socket

import redis
import redis.asyncio

from redline.connection import connect, connect_sync, internals


def _versions() -> str:
    return f"(redis-py {redis.__version__})"


def test_reply_error_builds_redis_py_exceptions() -> None:
    error = internals.reply_error("NOSCRIPT No matching script")
    assert isinstance(error, redis.exceptions.NoScriptError), (
        f"redis._parsers.BaseParser.parse_error changed shape {_versions()}: got {error!r}"
    )
    plain = internals.reply_error("ERR something")
    assert type(plain) is redis.exceptions.ResponseError, (
        f"redis._parsers.BaseParser.parse_error changed shape {_versions()}: got {plain!r}"
    )


def test_pack_command_gives_resp_for_what_hiredis_refuses() -> None:
    packed = b"".join(internals.pack_command("CLIENT SETNAME", bytearray(b"me")))
    assert packed == b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$2\r\nme\r\n", (
        f"redis.connection.HiredisRespSerializer.pack changed shape {_versions()}: {packed!r}"
    )


async def test_stream_transport_is_the_socket_of_a_connection(redis_url: str) -> None:
    client = connect(redis_url)
    try:
        pool = client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            assert hasattr(connection, "_writer"), (
                f"redis.asyncio.Connection._writer is gone {_versions()}: "
                "HeldConnection cannot read replies from the socket"
            )
            transport = internals.stream_transport(connection)
            assert isinstance(transport, asyncio.Transport), (
                f"redis.asyncio.Connection._writer.transport is not a transport {_versions()}"
            )
            assert not transport.is_closing()
        finally:
            await pool.release(connection)
    finally:
        await client.aclose()


def test_sentinel_pool_keeps_its_sentinels() -> None:
    sentinel = redis.asyncio.sentinel.Sentinel([("127.0.0.1", 1)])
    pool = redis.asyncio.sentinel.SentinelConnectionPool("mymaster", sentinel)
    assert list(internals.sentinels_of(pool)) == sentinel.sentinels, (
        f"SentinelConnectionPool.sentinel_manager.sentinels changed {_versions()}"
    )


def test_connected_socket_is_the_socket_a_blocking_connection_talks_on(redis_url: str) -> None:
    client = connect_sync(redis_url)
    try:
        pool = client.connection_pool
        connection = pool.get_connection()
        try:
            sock = internals.connected_socket(connection)
            assert isinstance(sock, socket.socket), (
                f"redis.Connection._sock is not the connection's socket {_versions()}"
            )
            sock.sendall(b"PING\r\n")
            assert sock.recv(64) == b"+PONG\r\n"
            connection.disconnect()  # not connected: connected_socket connects it again
            assert internals.connected_socket(connection).fileno() >= 0
        finally:
            pool.release(connection)
    finally:
        client.close()


def test_command_packer_packs_a_blocking_connections_commands(redis_url: str) -> None:
    client = connect_sync(redis_url)
    try:
        connection = client.connection_pool.get_connection()
        try:
            pack = internals.command_packer(connection)
            assert pack("SET", "k", b"v") == connection.pack_command("SET", "k", b"v"), (
                f"redis.Connection._command_packer.pack changed shape {_versions()}"
            )
        finally:
            client.connection_pool.release(connection)
    finally:
        client.close()
