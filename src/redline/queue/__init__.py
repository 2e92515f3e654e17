"""The ReliableQueue: at-least-once queues over plain Redis lists (see docs/queue.md).

queue = ReliableQueue(client, lease=30.0, max_deliveries=10)
await queue.push("orders", b"a", b"b")
for delivery in await queue.pop("orders", count=10, block=5.0):
    ...
await queue.ack(*batch)
"""

from __future__ import annotations

from redline.queue.leases import LeaseKeeper
from redline.queue.model import (
    DEAD_AGE,
    DEAD_MAX,
    Batch,
    Delivery,
    Holder,
    MessageState,
    QueuedMessage,
    QueueInfo,
    QueueKeys,
)
from redline.queue.reliable import ReliableQueue
from redline.queue.sync import SyncLeaseKeeper, SyncReliableQueue

__all__ = [
    "DEAD_AGE",
    "DEAD_MAX",
    "Batch",
    "Delivery",
    "Holder",
    "LeaseKeeper",
    "MessageState",
    "QueueInfo",
    "QueueKeys",
    "QueuedMessage",
    "ReliableQueue",
    "SyncLeaseKeeper",
    "SyncReliableQueue",
]
