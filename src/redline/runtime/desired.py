"""Desired counts: how many active instances of a namespace should run, as data in Redis.

The keys (built here, and nowhere else; `redline.scaling.cscale` writes them, a standby reads
them through this module):

- ``redline:scale`` — hash namespace → desired number of *active* replicas (``redline scale``
  writes it; so can any client: ``redis-cli hset redline:scale demo:worker 3``)
- ``{<ns>}:cscale:active`` — sorted set of active-slot leases (see `redline.runtime.standby`)
"""

from __future__ import annotations

from redline.connection import AsyncClient, text
from redline.keys import derived

__all__ = ["DESIRED_KEY", "active_key", "all_desired", "get_desired", "set_desired"]

DESIRED_KEY = "redline:scale"


def active_key(ns: str) -> str:
    """``{<ns>}:cscale:active``: the active slots of `ns`, scored by lease deadline (ms)."""
    return derived(ns, "cscale", "active")


async def get_desired(client: AsyncClient, ns: str) -> int | None:
    """The desired active replicas of `ns`, or None when nobody has set it."""
    value = await client.hget(DESIRED_KEY, ns)
    return None if value is None else int(value)


async def all_desired(client: AsyncClient) -> dict[str, int]:
    """Every namespace's desired active replicas (those someone has set)."""
    return {text(k): int(v) for k, v in (await client.hgetall(DESIRED_KEY)).items()}


async def set_desired(client: AsyncClient, ns: str, replicas: int) -> None:
    """Set the desired active replicas of `ns`; the agents converge to it."""
    if replicas < 0:
        raise ValueError(f"replicas must be 0 or more, got {replicas}")
    await client.hset(DESIRED_KEY, ns, replicas)
