"""`redline jobs …` (cancel, status, events) and `redline queue pause|resume`: controlling
jobs across every worker, from a shell."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict

import click
from redis.exceptions import RedisError

from redline.cli.common import fail, redis_failure, redis_option, server_for
from redline.connection import AsyncClient, connect, connect_sync, text
from redline.dashboard.busy import busy_jobs, workers
from redline.errors import JobError
from redline.jobs import job_keys
from redline.jobs.control import cancel_job_sync
from redline.jobs.events import JobEvent, job_events
from redline.jobs.status import job_status
from redline.jobs.usage import LimitUse, limit_use
from redline.jobs.worker import QUEUES_KEY

__all__ = ["jobs"]


@click.group()
def jobs() -> None:
    """Cancel jobs, and follow what happens to them (docs/jobs.md).

    \b
      redline jobs cancel ID [-q QUEUE]     cancel a waiting, scheduled or running job
      redline jobs status ID [-q QUEUE]     its state, attempts, progress and times
      redline jobs events QUEUE [--follow]  the queue's job events, oldest first
      redline jobs limits [QUEUE]...        rate limits' and concurrency caps' use now
      redline jobs busy                     what every worker runs now
    """


def _queue_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--queue",
        "-q",
        "queue_name",
        help="The job's queue (default: the one of the queues workers serve that knows the id).",
    )(func)


def _find_queue(client: object, job_id: str, given: str | None) -> str:
    """`given`, or the one queue served by workers whose status hash knows `job_id`."""
    if given:
        return given
    names = sorted(n.decode() for n in client.smembers(QUEUES_KEY))  # type: ignore[attr-defined]
    known = [n for n in names if client.exists(job_keys(n).status(job_id))]  # type: ignore[attr-defined]
    if len(known) != 1:
        where = f"it is known on {', '.join(known)}" if known else "no queue knows it"
        fail(f"job {job_id}: {where}; give its queue with --queue/-q", 2)
    return str(known[0])


@jobs.command()
@click.argument("job_id", metavar="ID")
@_queue_option
@redis_option
def cancel(job_id: str, queue_name: str | None, redis_url: str | None) -> None:
    """Cancel job ID: waiting or scheduled, it never runs; running, it is cancelled where it
    runs within about a second (a sync task sees current_job().cancelled). Exit code 1 when
    it had already finished."""
    with server_for(redis_url) as url:
        client = connect_sync(url)
        try:
            name = _find_queue(client, job_id, queue_name)
            known = client.exists(job_keys(name).status(job_id))
            if not cancel_job_sync(client, name, job_id):
                fail(f"job {job_id} on {name} had already finished: nothing to cancel")
            click.echo(f"cancel requested: job {job_id} on {name}")
            if not known:
                _unknown(name, job_id)
        except RedisError as exc:
            fail(redis_failure(exc, url))
        finally:
            client.close()


def _unknown(name: str, job_id: str) -> None:
    hint = f"a typo? `redline jobs events {name}` lists its jobs"
    click.echo(f"warning: {name} keeps no status of job {job_id} ({hint})", err=True)


@jobs.command()
@click.argument("job_id", metavar="ID")
@_queue_option
@redis_option
def status(job_id: str, queue_name: str | None, redis_url: str | None) -> None:
    """Print job ID's state, attempts, progress and times as JSON (exit code 1 when nothing
    is kept about it: finished without result_ttl, expired, or never enqueued)."""
    with server_for(redis_url) as url:
        client = connect_sync(url)
        try:
            name = _find_queue(client, job_id, queue_name)
        finally:
            client.close()

        async def read() -> object:
            aclient = connect(url)
            try:
                return await job_status(aclient, name, job_id)
            finally:
                await aclient.aclose()

        found = asyncio.run(read())
    if found is None:
        fail(f"nothing is kept about job {job_id} on {name}")
    click.echo(json.dumps({"queue": name, **asdict(found)}, default=str))  # type: ignore[call-overload]


@jobs.command()
@click.argument("queue_name", metavar="QUEUE")
@click.option(
    "--since",
    default="0-0",
    show_default=True,
    help="Start after this event id (as printed: an entry id, or <entry id>:<index> for an "
    "event of a worker's batch); '$' for new events only.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@redis_option
def events(queue_name: str, since: str, follow: bool, as_json: bool, redis_url: str | None) -> None:
    """Print QUEUE's job events (enqueued, started, progress, failed, retried, completed, dead,
    cancelled, expired), oldest first: one line each with its id, which --since takes to
    resume after it. The stream keeps about its last 10,000 entries (an entry is one event, or
    up to 32 written together)."""
    with server_for(redis_url) as url, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_print_events(url, queue_name, since, follow, as_json))


async def _print_events(url: str, name: str, since: str, follow: bool, as_json: bool) -> None:
    client = connect(url)
    shown = 0
    try:
        async for event in _events(client, name, since, follow):
            click.echo(json.dumps(asdict(event)) if as_json else _line(event))
            shown += 1
        if not shown:  # to stderr: a pipe reading events gets none
            click.echo(f"no events of queue {name!r} after {since}", err=True)
    except JobError as exc:  # a --since that is not an event id
        fail(str(exc), 2)
    except RedisError as exc:
        fail(redis_failure(exc, url))
    finally:
        await client.aclose()


def _events(client: AsyncClient, name: str, since: str, follow: bool) -> AsyncIterator[JobEvent]:
    return job_events(client, name, since=since, follow=follow)


def _line(e: JobEvent) -> str:
    extra = "" if e.progress is None else f" progress={e.progress:g}"
    extra += f" message={e.message!r}" if e.message else ""
    return f"{e.id} {e.event} job={e.job} task={e.task} attempt={e.attempt}{extra}"


@jobs.command()
@click.argument("queue_names", metavar="[QUEUE]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@redis_option
def limits(queue_names: tuple[str, ...], as_json: bool, redis_url: str | None) -> None:
    """Print the use now of the rate limits and concurrency caps of QUEUEs (default: every
    queue workers serve): per task and limit key, the slots held or the starts in the current
    window against the limit, and the jobs waiting for a slot. Limits are listed once workers
    met them (a registry per queue, kept a day after the last use)."""
    with server_for(redis_url) as url:
        found = asyncio.run(_read_limits(url, queue_names))
    for use in found:
        click.echo(json.dumps(asdict(use)) if as_json else _limit_line(use))
    if not found and not as_json:
        click.echo("no rate limit or concurrency cap in use (none met by a worker in a day)")


async def _read_limits(url: str, names: tuple[str, ...]) -> list[LimitUse]:
    client = connect(url)
    try:
        queues = names or sorted(text(n) for n in await client.smembers(QUEUES_KEY))
        return [use for name in queues for use in await limit_use(client, name)]
    except RedisError as exc:
        fail(redis_failure(exc, url))
        raise
    finally:
        await client.aclose()


def _limit_line(u: LimitUse) -> str:
    key = "" if u.key is None else f" key={u.key}"
    waiting = f" waiting={u.waiting}" if u.kind == "concurrency" else ""
    return f"{u.queue} {u.task}{key} {u.kind} {u.used}/{u.limit} {u.per}{waiting}"


@jobs.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@redis_option
def busy(as_json: bool, redis_url: str | None) -> None:
    """Print every job running now and the worker that runs it (host, pid, instance), the
    longest-running first, as the workers publish it in their instance records (about a
    second behind)."""

    async def read() -> list[tuple[str, dict[str, object]]]:
        client = connect(url)
        try:
            found = busy_jobs(await workers(client))
        finally:
            await client.aclose()
        return [
            (
                b.worker.instance.key,
                {
                    **asdict(b.job),
                    "host": b.worker.instance.host,
                    "pid": b.worker.instance.pid,
                    "seconds": round(b.seconds, 1),
                },
            )
            for b in found
        ]

    with server_for(redis_url) as url:
        running = asyncio.run(read())
    for instance, job in running:
        if as_json:
            click.echo(json.dumps({"instance": instance, **job}))
        else:
            click.echo(
                f"{job['id']} {job['task']} queue={job['key']} attempt={job['attempt']} "
                f"for={job['seconds']}s worker={job['host']}:{job['pid']} ({instance})"
            )
    if not running and not as_json:
        click.echo("no job is running")
