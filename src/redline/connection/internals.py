"""Every use of a library's private or undocumented API, in one place.

redline reaches into redis-py only where no public API does the job, and only here,
so that a release that reshapes one of these internals breaks one module, and
``tests/test_internals.py`` says which internal changed (rather than a type error at lint time
or a wrong answer at run time). Each entry names the versions it was checked against; move the
lock forward with ``make test-latest`` (docs/DEVELOPING.md).

Checked against redis-py 5.3.0 (the lower bound of pyproject's range) and 8.2.0.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis.connection
from redis._parsers import BaseParser

__all__ = [
    "command_packer",
    "connected_socket",
    "pack_command",
    "reply_error",
    "sentinels_of",
    "stream_transport",
]

#: redis-py's factory of ``ResponseError`` subclasses from an error reply's text (``NOSCRIPT``
#: → ``NoScriptError``, …), given to a hiredis reader as its ``replyError`` so that replies read
#: by ``connection.HeldConnection`` raise what redis-py's own reads raise. No public API exposes
#: it. (``redis._parsers.BaseParser.parse_error``, a classmethod, since redis-py 5.0.)
reply_error: Callable[[str], Exception] = BaseParser.parse_error

# redis-py's serializer for what hiredis.pack_command refuses (a command name with a space,
# bytearray or memoryview arguments). Undocumented; untyped since redis-py 8.2, hence the Any.
# (``redis.connection.HiredisRespSerializer`` since redis-py 5.0, ``pack(*args) -> list``.)
_serializer_class: Any = redis.connection.HiredisRespSerializer
_SERIALIZER = _serializer_class()


def pack_command(*args: Any) -> list[bytes]:
    """RESP for one command, by redis-py's hiredis serializer."""
    return cast(list[bytes], _SERIALIZER.pack(*args))


def stream_transport(connection: Any) -> asyncio.Transport:
    """The asyncio transport under a connected ``redis.asyncio.Connection``: redis-py keeps
    only a StreamReader/StreamWriter pair (``_reader``, ``_writer``), and ``HeldConnection``
    reads replies from the transport itself. (``Connection._writer``, redis-py 4.2 to 8.2.)"""
    return cast(asyncio.Transport, connection._writer.transport)


def command_packer(connection: Any) -> Callable[..., list[bytes]]:
    """What packs a blocking ``redis.Connection``'s commands (``pack(*args) -> list[bytes]``):
    its ``pack_command`` calls it through one frame more, per command. (``Connection
    ._command_packer``, redis-py 5.0 to 8.2.)"""
    return cast(Callable[..., list[bytes]], connection._command_packer.pack)


def connected_socket(connection: Any) -> socket.socket:
    """The socket of a connected blocking ``redis.Connection`` (its timeout set as the client
    asked), which ``channels.Held`` writes and reads itself. (``Connection._sock``, redis-py
    4.0 to 8.2; None while not connected.)"""
    sock = connection._sock
    if sock is None:
        connection.connect()
        sock = connection._sock
    return cast(socket.socket, sock)


def sentinels_of(pool: Any) -> Sequence[Any]:
    """The clients of a ``SentinelConnectionPool``'s sentinels, to close them with the pool's
    client (redis-py's asyncio ``Sentinel`` has no close of its own). (``pool.sentinel_manager
    .sentinels``, undocumented attributes, redis-py 4.2 to 8.2.)"""
    return cast(Sequence[Any], pool.sentinel_manager.sentinels)
