"""`redline queue pause|resume`: job queues' commands among the queue's (added to the
`queue` group by redline.cli.queue; the jobs layer imported only when one runs)."""

from __future__ import annotations

import click
from redis.exceptions import RedisError

from redline.cli.common import fail, redis_failure, redis_option, server_for
from redline.connection import connect_sync

__all__ = ["pause", "resume"]


@click.command()
@click.argument("names", nargs=-1, required=True)
@redis_option
def pause(names: tuple[str, ...], redis_url: str | None) -> None:
    """Pause job queues NAMES: within about a second no worker takes a job from them; running
    jobs finish, and enqueueing still works. `redline queue resume` undoes it."""
    _set_paused(names, redis_url, True)


@click.command()
@click.argument("names", nargs=-1, required=True)
@redis_option
def resume(names: tuple[str, ...], redis_url: str | None) -> None:
    """Resume paused job queues NAMES: their workers take jobs again within about a second."""
    _set_paused(names, redis_url, False)


def _set_paused(names: tuple[str, ...], redis_url: str | None, paused: bool) -> None:
    from redline.jobs.control import pause_queue_sync, resume_queue_sync  # jobs' only

    with server_for(redis_url) as url:
        client = connect_sync(url)
        try:
            for name in names:
                (pause_queue_sync if paused else resume_queue_sync)(client, name)
                click.echo(f"{'paused' if paused else 'resumed'} {name}")
        except RedisError as exc:
            fail(redis_failure(exc, url))
        finally:
            client.close()
