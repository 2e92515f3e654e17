"""Helpers the queue tests share."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from redis.asyncio import RedisCluster

from redline.connection import AsyncClient
from redline.queue import QueueKeys

WITHIN = 30.0  # seconds: generous, the machine is shared


async def until(predicate: Callable[[], Awaitable[object]]) -> None:
    """Poll an async condition every 20 ms (no fixed sleeps); fail after WITHIN seconds."""
    async with asyncio.timeout(WITHIN):
        while not await predicate():  # noqa: ASYNC110 - a Redis condition, no event to wait on
            await asyncio.sleep(0.02)


async def existing_keys(client: AsyncClient, queue: str) -> set[str]:
    """Which of `queue`'s keys exist, by role (works on the cluster, where KEYS sees one node)."""
    keys = QueueKeys.of(queue)
    roles = [f.name for f in dataclasses.fields(keys)]
    return {role for role in roles if await client.exists(getattr(keys, role))}


async def blocked_clients(client: AsyncClient) -> int:
    """Clients blocked in a command (BLMOVE), summed over the cluster's nodes."""
    if isinstance(client, RedisCluster):
        infos = await client.info("clients", target_nodes=RedisCluster.ALL_NODES)
        return sum(int(info["blocked_clients"]) for info in infos.values())
    return int((await client.info("clients"))["blocked_clients"])
