"""Who holds a queue's in-flight messages, and giving back what gone instances held.

A service run by the runtime pops as its instance: the queue's `consumer` is its lifecycle
hash, ``<ns>:<id>`` (`redline.runtime.lifecycle`), and every batch a pop leases records it
(docs/queue.md, "Who holds what"). An instance whose hash is gone (stopped, killed, expired)
holds its messages until their leases end; `release_gone` gives them back at once. Only names
of that form, in a namespace the registry knows, are judged: other consumers (a plain
`ReliableQueue`'s host:pid:random default) are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redline.connection import AsyncClient
from redline.queue import Holder, ReliableQueue
from redline.runtime.lifecycle import registry_key

__all__ = ["Held", "held_by", "release_gone"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """A `Holder` of a queue and whether its instance is `gone` (False: alive, or not an
    instance the runtime runs)."""

    holder: Holder
    gone: bool


async def _gone(client: AsyncClient, consumer: str) -> bool:
    namespace, _, ident = consumer.rpartition(":")
    if not namespace or not ident:
        return False
    if not await client.hexists(registry_key(), namespace):
        return False
    return not await client.exists(consumer)


async def held_by(client: AsyncClient, key: str) -> list[Held]:
    """The holders of queue `key`'s in-flight messages, each judged gone or not."""
    holders = await ReliableQueue(client).holders(key)
    return [Held(h, bool(h.consumer) and await _gone(client, h.consumer)) for h in holders]


async def release_gone(
    client: AsyncClient, key: str, max_deliveries: int = 10
) -> tuple[list[str], int]:
    """Give back for redelivery what the gone instances held of queue `key` (those past
    `max_deliveries` go to the dead letters); returns the instances and how many moved."""
    gone = [h.holder.consumer for h in await held_by(client, key) if h.gone]
    if not gone:
        return [], 0
    moved = await ReliableQueue(client, max_deliveries=max_deliveries).release(key, *gone)
    log.info("released queue=%s gone=%s moved=%d", key, ",".join(gone), moved)
    return gone, moved
