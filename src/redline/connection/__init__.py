"""The connection layer: Redis URLs, clients, the held connection, the embedded server.

`redline.connection` is the API the rest of redline uses (``from redline.connection import
connect``); its modules: `url` (the one URL parser), `client` (the client builder: `connect`,
`connect_sync`), `kinds` (the client types, `is_cluster_client`, `text`), `packing` (commands
packed by hiredis), `pool` (pools that wait for a free connection), `held` (`run_commands`,
`HeldConnection`), `channels` (producers' fast paths: `batched`, `held`), `embedded` (a
Valkey server started when none is reachable) and `internals` (every use of a library's
private API, in one place).
"""

from __future__ import annotations

from redline.connection.client import connect, connect_sync
from redline.connection.held import Command, HeldConnection, run_commands
from redline.connection.kinds import (
    AsyncClient,
    SyncClient,
    is_cluster_client,
    longest_block,
    read_timeout,
    text,
)
from redline.connection.url import is_cluster, mask_url, parse_url

__all__ = [
    "AsyncClient",
    "Command",
    "HeldConnection",
    "SyncClient",
    "connect",
    "connect_sync",
    "is_cluster",
    "is_cluster_client",
    "longest_block",
    "mask_url",
    "parse_url",
    "read_timeout",
    "run_commands",
    "text",
]
