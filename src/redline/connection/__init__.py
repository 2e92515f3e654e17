"""The connection layer: Redis URLs, clients, the held connection, the embedded server.

`redline.connection` is the API the rest of redline uses (``from redline.connection import
connect``); its modules: `client` (the one URL parser and client builder, `HeldConnection`),
`embedded` (a Valkey server started when none is reachable) and `internals` (every use of a
library's private API, in one place).
"""

from __future__ import annotations

from redline.connection.client import (
    AsyncClient,
    Command,
    HeldConnection,
    SyncClient,
    connect,
    connect_sync,
    is_cluster,
    is_cluster_client,
    mask_url,
    parse_url,
    run_commands,
    text,
)

__all__ = [
    "AsyncClient",
    "Command",
    "HeldConnection",
    "SyncClient",
    "connect",
    "connect_sync",
    "is_cluster",
    "is_cluster_client",
    "mask_url",
    "parse_url",
    "run_commands",
    "text",
]
