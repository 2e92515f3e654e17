"""What every redline Sidekiq worker does in the background, beside running jobs:

- `promote`: move due jobs of ``schedule`` and ``retry`` onto their queues (Sidekiq's
  scheduled-job poller), one script per batch that removes each job before it pushes it, so that
  Ruby pollers running at the same time never move a job twice;
- `recover`: give the jobs of dead processes' in-flight lists back to their queues.
"""

from __future__ import annotations

import json
import logging
import time

from redline.connection import AsyncClient
from redline.jobs.sidekiq.fetch import INFLIGHT, RECOVERIES, inflight_key
from redline.jobs.sidekiq.job import DEAD, QUEUES, RETRY, SCHEDULE, encode, queue_key
from redline.scripting.scripts import run

__all__ = ["promote", "recover"]

log = logging.getLogger(__name__)

BATCH = 100  # due jobs moved per script call


async def promote(client: AsyncClient, now: float | None = None) -> int:
    """Move every due job of ``schedule`` and ``retry`` onto its queue; returns how many."""
    moved = 0
    for zset in (SCHEDULE, RETRY):
        while True:
            when = time.time() if now is None else now
            due: list[bytes] = await client.zrangebyscore(  # type: ignore[assignment]
                zset, "-inf", repr(when), start=0, num=BATCH
            )
            if not due:
                break
            now_moved = await _move(client, zset, due, when)
            moved += now_moved
            if len(due) < BATCH or not now_moved:  # the rest is not due, or not jobs
                break
    return moved


async def _move(client: AsyncClient, zset: str, due: list[bytes], now: float) -> int:
    keys: list[str] = [zset, QUEUES]
    args: list[str | bytes] = []
    for stored in due:
        try:
            fields = json.loads(stored)
            name = str(fields["queue"]) if isinstance(fields, dict) else ""
        except (ValueError, KeyError):
            name = ""
        if not name:  # not a job Sidekiq could move either: left where it is, said once a pass
            log.warning("sidekiq: %s holds a member that is not a job: %r", zset, stored[:80])
            continue
        fields["enqueued_at"] = now
        keys.append(queue_key(name))
        args += [stored, encode(fields), name]
    if len(keys) == 2:
        return 0
    return int(await run(client, "sidekiq_promote", keys, args))


async def recover(
    client: AsyncClient, own: str, grace: float, max_recoveries: int, only: str | None = None
) -> tuple[int, int]:
    """Requeue the in-flight jobs of processes without a heartbeat (`only`: just that one,
    `own` is then allowed); returns (requeued, sent to the morgue)."""
    entries: list[bytes] = await client.zrange(INFLIGHT, 0, -1)  # type: ignore[assignment]
    lists = [(i, q) for i, q in map(_entry, entries) if (i == only if only else i != own)]
    alive = await _alive(client, {identity for identity, _ in lists})
    requeued = buried = 0
    for identity, name in lists:
        if identity in alive or not identity:
            continue
        keys = [identity, inflight_key(identity, name), queue_key(name), INFLIGHT, DEAD]
        args: list[str | int] = [json.dumps([identity, name]), repr(time.time()), repr(grace)]
        args.append(max_recoveries)
        back, dead = await run(client, "sidekiq_recover", [*keys, RECOVERIES], args)
        if back > 0 or dead > 0:
            log.warning(
                "sidekiq: recovered the jobs of a dead process identity=%s queue=%s "
                "requeued=%d dead=%d",
                identity,
                name,
                back,
                dead,
            )
        requeued, buried = requeued + max(back, 0), buried + dead
    return requeued, buried


def _entry(member: bytes) -> tuple[str, str]:
    """A registry member's (identity, queue); ("", "") for one that is not ours to read."""
    try:
        identity, queue = json.loads(member)
        return str(identity), str(queue)
    except (ValueError, TypeError):
        log.warning("sidekiq: %s member is not [identity, queue]: %r", INFLIGHT, member)
        return "", ""


async def _alive(client: AsyncClient, identities: set[str]) -> set[str]:
    ordered = sorted(identities)
    pipe = client.pipeline(transaction=False)
    for identity in ordered:
        pipe.exists(identity)
    found = await pipe.execute() if ordered else []
    return {identity for identity, there in zip(ordered, found, strict=True) if there}
