"""Commands packed by hiredis: the packer blocking connections take (`_PACKER`), and the
asyncio connection classes that pack the same way (`pack_with_hiredis`)."""

from __future__ import annotations

import functools
from typing import Any

import hiredis

from redline.connection.internals import pack_command
from redline.connection.kinds import is_cluster_client

__all__ = ["pack_with_hiredis"]


def _pack(*args: Any) -> list[bytes]:
    """Packs a command with hiredis directly. redis-py's asyncio connections pack in Python,
    re-joining the buffer for each argument: an LPUSH of 50 payloads took 74 µs there and takes
    23 µs here, a queue pop acking 50 messages 112 µs against 46 µs (a 2-core VM;
    `bench/http.py` is where it shows). Its blocking ones call hiredis after rebuilding every
    argument in a generator (~0.25 µs each: a tenth of a queue consumer's own CPU at batch
    100). Only redis-py's rare cases need its serializer: a command name with a space
    ("CLIENT SETNAME"), and bytearray or memoryview arguments (TypeError here)."""
    name = args[0]
    if " " not in name if isinstance(name, str) else b" " not in name:
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass
    return pack_command(*args)


class _HiredisPacker:
    """The packer blocking connections take (``command_packer``)."""

    pack = staticmethod(_pack)


_PACKER = _HiredisPacker()


class _HiredisPacking:
    """Mixed into an asyncio connection class, before redis-py's: packs with `_pack`."""

    pack_command = staticmethod(_pack)


@functools.cache
def _hiredis_packing(connection_class: type) -> type:
    """`connection_class` (plain, TLS or Unix socket) packing commands with hiredis."""
    return type(connection_class.__name__, (_HiredisPacking, connection_class), {})


def pack_with_hiredis(client: Any) -> None:
    """Make the connections `client` will open (it has opened none yet) pack with hiredis.

    A cluster client keeps its connection class in the keyword arguments it shares with its
    nodes manager (nodes found later are made from them) and in each startup node; the others
    in their pool. tests/test_connection.py checks the connections a client really opened."""
    if is_cluster_client(client):
        kwargs = client.connection_kwargs
        kwargs["connection_class"] = _hiredis_packing(kwargs["connection_class"])
        for node in client.startup_nodes:
            node.connection_class = kwargs["connection_class"]
    else:
        pool = client.connection_pool
        pool.connection_class = _hiredis_packing(pool.connection_class)
