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

from redline.connection import AsyncClient, Command, run_commands
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


def _instance(consumer: str) -> str:
    """The namespace of a consumer named ``<ns>:<id>`` ("" for any other name)."""
    namespace, _, ident = consumer.rpartition(":")
    return namespace if namespace and ident else ""


async def held_by(client: AsyncClient, key: str) -> list[Held]:
    """The holders of queue `key`'s in-flight messages, each judged gone or not (one round
    trip for all their registry entries and lifecycle hashes)."""
    holders = await ReliableQueue(client).holders(key)
    named = [h for h in holders if h.consumer and _instance(h.consumer)]
    looks: list[Command] = []
    for h in named:
        looks += [("HEXISTS", registry_key(), _instance(h.consumer)), ("EXISTS", h.consumer)]
    found = await run_commands(client, looks, raise_on_error=True)
    gone = {
        h.consumer
        for h, registered, alive in zip(named, found[::2], found[1::2], strict=True)
        if int(registered) and not int(alive)
    }
    return [Held(h, h.consumer in gone) for h in holders]


async def release_gone(
    client: AsyncClient, key: str, max_deliveries: int = 10, held: list[Held] | None = None
) -> tuple[list[str], int]:
    """Give back for redelivery what the gone instances held of queue `key` (those past
    `max_deliveries` go to the dead letters); returns the instances and how many moved.
    `held`: what `held_by` has just said, when the caller has it (else it is read)."""
    judged = await held_by(client, key) if held is None else held
    gone = [h.holder.consumer for h in judged if h.gone]
    if not gone:
        return [], 0
    moved = await ReliableQueue(client, max_deliveries=max_deliveries).release(key, *gone)
    log.info("released queue=%s gone=%s moved=%d", key, ",".join(gone), moved)
    return gone, moved
