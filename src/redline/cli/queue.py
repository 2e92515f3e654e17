"""`redline queue …`: an operator's view of ReliableQueues (counts, messages, dead letters)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from redline.cli.common import fail, redis_failure, redis_option, server_for
from redline.cli.queue_pause import pause, resume
from redline.connection import connect, connect_sync
from redline.errors import RedlineError
from redline.queue import (
    DEAD_AGE,
    DEAD_MAX,
    Delivery,
    QueuedMessage,
    QueueInfo,
    QueueKeys,
    SyncReliableQueue,
)
from redline.runtime.holders import Held, held_by, release_gone

__all__ = ["queue"]

F = TypeVar("F", bound=Callable[..., Any])
PREVIEW = 80  # characters of a payload shown in tables


def _shown(name: str, default: Any, kind: click.ParamType[Any], what: str) -> Callable[[F], F]:
    """An option whose --help shows its default."""
    return click.option(name, default=default, show_default=True, type=kind, help=what)


_start = _shown("--start", 0, click.IntRange(min=0), "Skip this many (the next page: --start 20).")
_count = _shown("--count", 20, click.IntRange(min=1), "Messages shown.")
_max_deliveries = _shown(
    "--max-deliveries",
    10,
    click.IntRange(min=1),
    "A message delivered this many times goes to the dead letters when recovered.",
)


@contextlib.contextmanager
def _queue(redis_url: str | None, **settings: Any) -> Iterator[SyncReliableQueue]:
    """A SyncReliableQueue on the server; Redis and queue errors end the command clearly."""
    with server_for(redis_url) as url:
        client = connect_sync(url)
        try:
            yield SyncReliableQueue(client, **settings)
        except RedisError as exc:
            fail(redis_failure(exc, url))
        except RedlineError as exc:
            fail(str(exc))
        finally:
            client.close()


def _show(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="backslashreplace")
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def _print(table: Table, empty: str = "") -> None:
    """The table, or the line `empty` when it has no rows."""
    if empty and not table.row_count:
        click.echo(empty)
        return
    Console().print(table)


def _messages_table(title: str, messages: Sequence[QueuedMessage]) -> Table:
    table = Table(title=title)
    for column in ("id", "state", "deliveries", "elapsed", "remaining", "payload", "reason"):
        table.add_column(column, justify="right" if column == "deliveries" else "left")
    for m in messages:
        table.add_row(
            m.id or "(on first pop)",
            m.state.value,
            str(m.deliveries),
            _seconds(m.elapsed),
            _seconds(m.remaining),
            _show(m.payload),
            m.reason,
        )
    return table


def _deliveries_table(deliveries: Sequence[Delivery]) -> Table:
    table = Table(title=f"{len(deliveries)} delivered (ack with: redline queue ack KEY ID:TOKEN)")
    for column in ("queue", "id:token", "deliveries", "payload"):
        table.add_column(column)
    for d in deliveries:
        table.add_row(d.key, f"{d.id}:{d.deliveries}", str(d.deliveries), _show(d.payload))
    return table


@click.group()
def queue() -> None:
    """Look at and operate ReliableQueues: counts, messages, dead letters (see docs/queue.md).

    \b
    Examples:
      redline queue push orders '{"sku": 7}'
      redline queue info orders
      redline queue pop orders --count 10
      redline queue ack orders 1:1
      redline queue dead orders
      redline queue retention orders --entries 1000 --days 30
      redline queue requeue orders --all
      redline queue holders orders --release-gone
    """


@queue.command()
@click.argument("keys", nargs=-1, required=True)
@redis_option
def info(keys: tuple[str, ...], redis_url: str | None) -> None:
    """Counts of each queue KEY: waiting, in flight, delayed, dead, expired leases; the dead
    letters and job failure records its retention dropped, and the retention (entries kept,
    days kept; see `redline queue retention`). A row per queue; a column per queue when the
    terminal is too narrow for that."""
    with _queue(redis_url) as q:
        counted = {key: _counts(q.info(key)) for key in keys}
    console = Console()
    table = _a_row_per_queue(counted)
    unbounded = console.options.update_width(10_000)
    if console.measure(table, options=unbounded).minimum > console.width:
        table = _a_column_per_queue(counted)  # narrow terminal: headings in full, not cut
    console.print(table)


_COUNTS = ("waiting", "inflight", "delayed", "dead", "expired", "dropped", "records dropped")


def _counts(i: QueueInfo) -> dict[str, str]:
    """What `info` shows of one queue, by heading."""
    numbers = (i.waiting, i.inflight, i.delayed, i.dead, i.expired, i.dropped, i.records_dropped)
    shown = dict(zip(_COUNTS, (str(n) for n in numbers), strict=True))
    return {**shown, "dead kept": f"{i.dead_max}, {_days(i.dead_age)}"}


def _a_row_per_queue(counted: dict[str, dict[str, str]]) -> Table:
    table = Table(title="queues")
    for column in ("queue", *_COUNTS, "dead kept"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for key, shown in counted.items():
        table.add_row(key, *shown.values())
    return table


def _a_column_per_queue(counted: dict[str, dict[str, str]]) -> Table:
    table = Table(title="queues")
    table.add_column("")
    for key in counted:
        table.add_column(key, justify="right")
    for heading in (*_COUNTS, "dead kept"):
        table.add_row(heading, *(shown[heading] for shown in counted.values()))
    return table


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days"


@queue.command()
@click.argument("key")
@_shown(
    "--entries", DEAD_MAX, click.IntRange(min=1), "Dead letters (and job failure records) kept."
)
@_shown(
    "--days",
    DEAD_AGE / 86400,
    click.FloatRange(min=0, min_open=True),
    "Days a dead letter is kept.",
)
@redis_option
def retention(key: str, entries: int, days: float, redis_url: str | None) -> None:
    """Set what KEY keeps of its dead letters and job failure records: the oldest past
    either bound are dropped (and counted, see `info`) the next time one is added. Stored
    beside the queue, so every consumer applies it.

    \b
    Example: keep at most 1000 dead letters, none older than 30 days:
      redline queue retention orders --entries 1000 --days 30
    """
    with _queue(redis_url) as q:
        kept, age = q.set_retention(key, entries, days * 86400)
    click.echo(f"{key}: keeps the newest {kept} dead letters, none older than {_days(age)}")


@queue.command()
@click.argument("key")
@click.option("--pending", is_flag=True, help="In-flight messages (soonest lease end first).")
@click.option("--delayed", is_flag=True, help="Delayed messages (retries, soonest due first).")
@_start
@_count
@redis_option
def inspect(
    key: str, pending: bool, delayed: bool, start: int, count: int, redis_url: str | None
) -> None:
    """A page of KEY's waiting messages (in delivery order), or in-flight or delayed ones."""
    if pending and delayed:
        raise click.UsageError("give --pending or --delayed, not both")
    with _queue(redis_url) as q:
        messages = q.inspect(key, pending, start, count, delayed=delayed)
    which = "in-flight" if pending else "delayed" if delayed else "waiting"
    empty = f"{key}: no {which} messages" + (f" from #{start}" if start else "")
    _print(_messages_table(f"{key}: {len(messages)} from #{start}", messages), empty)


@queue.command()
@click.argument("key")
@_start
@_count
@redis_option
def dead(key: str, start: int, count: int, redis_url: str | None) -> None:
    """A page of KEY's dead letters, oldest first, with the reason each died."""
    with _queue(redis_url) as q:
        messages = q.dead(key, start, count)
    empty = f"{key}: no dead letters" + (f" from #{start}" if start else "")
    _print(_messages_table(f"{key}: dead letters from #{start}", messages), empty)


@queue.command()
@click.argument("key")
@click.argument("payloads", nargs=-1, required=True)
@redis_option
def push(key: str, payloads: tuple[str, ...], redis_url: str | None) -> None:
    """Push PAYLOADS (oldest first) onto KEY and print their ids; `-` reads one per line
    from stdin."""
    lines = [line.rstrip("\n") for line in sys.stdin] if payloads == ("-",) else list(payloads)
    with _queue(redis_url) as q:
        ids = q.push(key, *lines)
    click.echo("\n".join(ids))


@queue.command()
@click.argument("keys", nargs=-1, required=True)
@_shown("--count", 1, click.IntRange(1, 10_000), "Messages to take at most.")
@click.option(
    "--block",
    type=click.FloatRange(min=0),
    help="Wait up to this many seconds for a message (default: do not wait).",
)
@_shown(
    "--lease",
    30.0,
    click.FloatRange(min=0.001),
    "Seconds the messages are yours; unacked by then, they are redelivered.",
)
@redis_option
def pop(
    keys: tuple[str, ...], count: int, block: float | None, lease: float, redis_url: str | None
) -> None:
    """Take up to COUNT messages from KEYS (first key first). They stay in flight until acked
    (`redline queue ack KEY ID:TOKEN`) or until the lease ends, then they are redelivered."""
    with _queue(redis_url, lease=lease) as q:
        got = q.pop(*keys, count=count, block=block)
    _print(_deliveries_table(got), f"nothing to take: no message waiting on {' '.join(keys)}")


def _receipts(q: SyncReliableQueue, key: str, receipts: Sequence[str]) -> list[Delivery]:
    """`ID:TOKEN` as pop printed it, or a bare ID (acks the current delivery, whoever has it)."""
    found = []
    for receipt in receipts:
        mid, _, token = receipt.partition(":")
        if not token:
            token = _current_token(q, key, mid)
        if not token.isdigit():
            raise click.BadParameter(f"{receipt!r}: expected ID or ID:TOKEN (as pop prints it)")
        found.append(Delivery(key, mid, b"", int(token)))
    return found


_PAGE = 1000  # in-flight messages per queue_view call


def _current_token(q: SyncReliableQueue, key: str, mid: str) -> str:
    """The delivery count of message `mid` ("0" when unknown): its own field, or, for a message
    leased with its batch, found in the in-flight view (an operator's command, rarely run)."""
    keys = QueueKeys.of(key)
    current = q.client.hget(keys.deliveries, mid)
    if isinstance(current, bytes):
        return current.decode()
    start = 0
    while True:
        page = q.inspect(key, pending=True, start=start, count=_PAGE)
        found = [m for m in page if m.id == mid]
        if found or len(page) < _PAGE:
            return str(found[0].deliveries) if found else "0"
        start += _PAGE


@queue.command()
@click.argument("key")
@click.argument("receipts", nargs=-1, required=True, metavar="ID[:TOKEN]...")
@redis_option
def ack(key: str, receipts: tuple[str, ...], redis_url: str | None) -> None:
    """Acknowledge messages of KEY. ID:TOKEN (as `pop` prints it) is refused when the message
    was redelivered since; a bare ID acknowledges whatever delivery is current."""
    with _queue(redis_url) as q:
        acked = q.ack(*_receipts(q, key, receipts))
    click.echo(f"acknowledged {len(acked)} of {len(receipts)}: {' '.join(acked)}".rstrip(": "))
    refused = [r for r in receipts if r.partition(":")[0] not in acked]
    if refused:
        fail(
            f"refused {' '.join(refused)}: not in flight under that delivery (unknown id, "
            f"acknowledged already, or redelivered since); `redline queue inspect {key} "
            "--pending` lists what is in flight"
        )


@queue.command()
@click.argument("key")
@_shown("--count", 1000, click.IntRange(min=1), "Messages to recover at most.")
@click.option(
    "--elapsed",
    type=click.FloatRange(min=0),
    help="Seconds since delivery (else: expired leases only).",
)
@_max_deliveries
@redis_option
def recover(
    key: str, count: int, elapsed: float | None, max_deliveries: int, redis_url: str | None
) -> None:
    """Give KEY's expired in-flight messages back for redelivery (past --max-deliveries:
    to the dead letters)."""
    with _queue(redis_url, max_deliveries=max_deliveries) as q:
        moved = q.recover(key, count, elapsed)
    click.echo(f"recovered {moved}")


async def _holders(
    url: str, key: str, release: bool, max_deliveries: int
) -> tuple[list[Held], list[str], int]:
    client = connect(url)
    try:
        held = await held_by(client, key)
        gone, moved = await release_gone(client, key, max_deliveries, held) if release else ([], 0)
        return held, gone, moved
    finally:
        await client.aclose()


@queue.command()
@click.argument("key")
@click.option("--release-gone", is_flag=True, help="Give back what gone instances hold.")
@_max_deliveries
@redis_option
def holders(key: str, release_gone: bool, max_deliveries: int, redis_url: str | None) -> None:
    """Who holds KEY's in-flight messages: each consumer (a service instance's `<ns>:<id>`, or
    a plain queue's host:pid:random; "" when not known), its batches and messages, and whether
    the instance is gone (its lifecycle hash is). --release-gone gives back for redelivery, at
    once, what gone instances held (past --max-deliveries: to the dead letters)."""
    with server_for(redis_url) as url:
        try:
            held, gone, moved = asyncio.run(_holders(url, key, release_gone, max_deliveries))
        except RedisError as exc:
            fail(redis_failure(exc, url))
    table = Table(title=f"{key}: who holds its in-flight messages")
    for column in ("consumer", "batches", "messages", "instance"):
        table.add_column(column)
    for h in held:
        state = "gone" if h.gone else ""
        table.add_row(
            h.holder.consumer or "(not known)", str(h.holder.batches), str(h.holder.messages), state
        )
    _print(table, f"{key}: nothing in flight, so no holder")
    if release_gone:
        click.echo(f"released {moved} held by {len(gone)} gone instance(s)")


def _dead_option(what: str) -> Callable[[F], F]:
    return click.option("--all", "everything", is_flag=True, help=f"{what} every dead letter.")


def _ids_or_all(ids: tuple[str, ...], everything: bool) -> None:
    if bool(ids) == everything:
        raise click.UsageError("give dead-letter IDS or --all (one of the two)")


def _settled(done: str, count: int, key: str, ids: tuple[str, ...]) -> None:
    """Say how many dead letters were `done`; exit 1 when some ids named none."""
    if not ids:
        click.echo(f"{done} {count}")
        return
    click.echo(f"{done} {count} of {len(ids)}")
    if count < len(ids):
        fail(f"not every id is a dead letter of {key!r}: `redline queue dead {key}` lists them")


@queue.command()
@click.argument("key")
@click.argument("ids", nargs=-1)
@_dead_option("Requeue")
@redis_option
def requeue(key: str, ids: tuple[str, ...], everything: bool, redis_url: str | None) -> None:
    """Give dead letters IDS of KEY (or --all) another life: due now, delivery count reset."""
    _ids_or_all(ids, everything)
    with _queue(redis_url) as q:
        _settled("requeued", q.requeue(key, *ids, everything=everything), key, ids)


@queue.command()
@click.argument("key")
@click.argument("ids", nargs=-1)
@_dead_option("Delete")
@redis_option
def delete(key: str, ids: tuple[str, ...], everything: bool, redis_url: str | None) -> None:
    """Delete dead letters IDS of KEY (or --all) for good."""
    _ids_or_all(ids, everything)
    with _queue(redis_url) as q:
        _settled("deleted", q.delete(key, *ids, everything=everything), key, ids)


@queue.command()
@click.argument("key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@redis_option
def purge(key: str, yes: bool, redis_url: str | None) -> None:
    """Drop every waiting and delayed message of KEY (in-flight ones and dead letters stay)."""
    if not yes:
        click.confirm(f"drop every waiting and delayed message of {key!r}?", abort=True)
    with _queue(redis_url) as q:
        click.echo(f"purged {q.purge(key)}")


queue.add_command(pause)
queue.add_command(resume)
