"""queue_pop's and queue_view's arguments and replies, built and parsed (docs/queue.md,
"Scripts and Redis Functions"): the acks of whole batches, the batch a pop names, the rows a
view returns."""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from redline.connection import text
from redline.queue.model import Batch, Delivery, MessageState, QueuedMessage

__all__ = [
    "ack_args",
    "deliveries_of",
    "in_order",
    "pushed_ids",
    "take_acked",
    "tokens",
    "viewed",
    "warn_refused",
]

log = logging.getLogger("redline.queue")

_ID = operator.attrgetter("id")  # (map with it: no comprehension's frame per ack)


def pushed_ids(reply: Sequence[Any]) -> list[str]:
    """The ids of queue_push_run's reply, ``{first, n}``: first … first + n - 1."""
    first, n = reply
    if n == 1:  # a push of one: no comprehension's frame
        return [str(first)]
    return [str(i) for i in range(first, first + n)]  # (a third faster than map(str, ...))


def tokens(deliveries: Iterable[Delivery]) -> list[str | int]:
    return [x for d in deliveries for x in (d.id, d.deliveries)]


def _one_batch(deliveries: Sequence[Delivery]) -> Batch | None:
    """The batch `deliveries` are, whole, when they are exactly one (a steady consumer's ack)."""
    first = deliveries[0].batch if deliveries else None
    if first is None or len(deliveries) != first.size:
        return None
    if first.size == 1:  # a pop of one's delivery: nothing else to compare
        return first
    if any(d.batch is not first for d in deliveries):
        return None
    return first if len({d.id for d in deliveries}) == first.size else None


def ack_args(deliveries: Sequence[Delivery]) -> tuple[list[str | int], dict[str, list[str]]]:
    """queue_pop's ack pairs for `deliveries`: (batch, its ``n:id:token``) for each batch they
    hold whole, (id, token) for the others; and the ids of each batch named (by its name)."""
    whole = _one_batch(deliveries)
    if whole is not None:
        return [whole.name, whole.whole], {whole.name: list(map(_ID, deliveries))}
    pairs: list[str | int] = []
    groups: dict[int, list[Delivery]] = {}
    for d in deliveries:
        if d.batch is None:
            pairs += (d.id, d.deliveries)
        else:
            groups.setdefault(id(d.batch), []).append(d)
    wholes: dict[str, list[str]] = {}
    for group in groups.values():
        batch, ids = group[0].batch, [d.id for d in group]
        assert batch is not None  # grouped by it
        # (two batches of one name: an older one closed in the same ms; the second goes by id)
        if len(group) == batch.size == len(set(ids)) and batch.name not in wholes:
            pairs += (batch.name, batch.whole)
            wholes[batch.name] = ids
        else:
            pairs += tokens(group)
    return pairs, wholes


def take_acked(
    reply: Sequence[Any], acked: list[str], wholes: dict[str, list[str]]
) -> tuple[Sequence[Any], list[str]]:
    """Adds queue_pop's acknowledged ids to `acked` (a batch acked whole: the ids `wholes` has
    for it). Returns the rest of `reply` (of a pop that named its consumer: the batch's name,
    then the deliveries) and the ids of the batches refused (their acks to make one by one)."""
    n = int(reply[2])
    for entry in reply[3 : 3 + n]:
        name = entry.decode()
        ids = wholes.pop(name, None)
        if ids is None:
            acked.append(name)
        else:
            acked += ids
    refused = [i for ids in wholes.values() for i in ids] if wholes else []
    return reply[3 + n :], refused


def deliveries_of(key: str, rest: Sequence[Any], want: int) -> list[Delivery]:
    """queue_pop's batch name and deliveries (`rest`, see `take_acked`) for a pop of `want`:
    of more than one, in the short form its ``#, runs`` pair asks for (the runs of their ids,
    their counts, one for all when equal, then the payloads); of one, in the long form (id,
    payload, count: one id is no run, and the pair and the short reply would cost the server
    more). Replies are bytes (the queue classes refuse a client that decodes them), so ids are
    decoded without `text`'s check."""
    if len(rest) < 4:
        return []
    name = rest[0].decode()
    if want == 1:
        first, count = rest[1].decode(), int(rest[3])
        return [Delivery(key, first, rest[2], count, Batch(name, 1, f"1:{first}:{count}"))]
    spans, counts, payloads = rest[1], rest[2], rest[3:]
    size = len(payloads)
    if size == 1:  # one was left
        first, count = spans.partition(b":")[0].decode(), int(counts)  # (or "id:id")
        return [Delivery(key, first, payloads[0], count, Batch(name, 1, f"1:{first}:{count}"))]
    ids = _ids(spans)
    each = [int(n) for n in counts.split(b",")] if b"," in counts else [int(counts)] * size
    batch = Batch(name, size, f"{size}:{ids[0]}:{each[0]}")
    return [Delivery(key, i, p, n, batch) for i, p, n in zip(ids, payloads, each, strict=True)]


def _ids(spans: bytes) -> list[str]:
    """The ids of a pop's runs, ``first:last`` (or an id alone) joined by ``,``."""
    ids: list[str] = []
    for span in spans.split(b","):
        first, _, last = span.partition(b":")
        if last:
            ids += [str(i) for i in range(int(first), int(last) + 1)]
        else:
            ids.append(first.decode())
    return ids


def in_order(wanted: Sequence[Delivery], acked: list[str]) -> list[str]:
    """`acked` in the order of `wanted`: the ids of a whole batch refused and then acked one by
    one come back from a second call, after the ids that the first one acked."""
    if len(acked) < 2:
        return acked
    left = Counter(acked)  # an id may be acked once per queue
    # Of a message's deliveries in `wanted` (a stale one beside its redelivery), only the one
    # with the highest token can have been accepted: its place is that one's.
    latest: dict[tuple[str, str], int] = {}
    for d in wanted:
        latest[d.key, d.id] = max(latest.get((d.key, d.id), 0), d.deliveries)
    ordered = []
    for d in wanted:
        if left[d.id] > 0 and d.deliveries == latest[d.key, d.id]:
            left[d.id] -= 1
            ordered.append(d.id)
    return ordered + list(left.elements())  # (none left unless a token was made up)


def warn_refused(wanted: Sequence[Delivery], acked: Sequence[str]) -> None:
    if len(acked) < len(wanted):
        done = list(acked)
        stale = []
        for d in wanted:
            if d.id in done:
                done.remove(d.id)
            else:
                stale.append(f"{d.key}/{d.id}")
        log.warning("ack refused (stale or unknown) messages=%s", ",".join(stale))


def viewed(key: str, state: MessageState, now: int, row: Sequence[Any]) -> QueuedMessage:
    mid, payload, deliveries, score, since, reason, consumer = row
    elapsed: float | None = None
    remaining: float | None = None
    if state is MessageState.INFLIGHT:
        elapsed, remaining = (now - int(since)) / 1000, (int(score) - now) / 1000
    elif state is MessageState.DELAYED:
        remaining = (int(score) - now) / 1000
    else:
        elapsed = (now - int(score)) / 1000
    return QueuedMessage(
        key,
        text(mid),
        payload,
        state,
        int(deliveries),
        elapsed,
        remaining,
        text(reason),
        text(consumer),
    )
