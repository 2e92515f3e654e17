"""The one loop every service runs on: connect, start hooks, step until stopped, stop hooks.

A service is an object with ``name`` and an async ``step(ctx)`` that does one unit of work and
returns within ``pop_timeout`` seconds (a blocking pop has that timeout), so that a stop request
is honoured within that time and the message in hand is always finished, never dropped.

Everything around the loop — lifecycle registration and renewal, metrics monitors — is a
`Hook`: ``start`` before the first step, ``tick`` every ``tick_interval`` seconds beside the
loop, ``stop`` after the last step. A hook that raises `ShutdownRequested` stops the service.
Which hooks a process has, and in which order, `redline.runtime.assemble` decides.

A step that fails is kept among the namespace's recent errors
(`redline.runtime.metrics.record_error`): a run of transient failures once the step succeeds
again (Redis is reachable then), an exception that ends the service before it propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from redline.backoff import Backoff
from redline.config import ServiceConfig, is_secret
from redline.connection import connect, mask_url
from redline.errors import TRANSIENT, ShutdownRequested
from redline.runtime.context import Context, Hook, Service
from redline.runtime.lifecycle import check_interval
from redline.runtime.metrics import record_error

__all__ = ["masked", "run_service"]

log = logging.getLogger(__name__)

START_ATTEMPTS = 8


def masked(config: BaseModel) -> dict[str, Any]:
    """The effective config by its file names, with passwords in URLs and secret fields masked."""
    out: dict[str, Any] = {}
    for key, value in config.model_dump(by_alias=True).items():
        if is_secret(key) and value:
            out[key] = "***"
        elif isinstance(value, str) and "://" in value:
            out[key] = mask_url(value)
        else:
            out[key] = value
    return out


async def _step_loop(service: Service, ctx: Context) -> None:
    backoff = Backoff(f"service={service.name} step")
    while not ctx.stopping.is_set():
        try:
            await service.step(ctx)
        except ShutdownRequested as exc:
            log.info("service=%s shutdown requested reason=%r", service.name, str(exc))
            ctx.stopping.set()
        except TRANSIENT as exc:
            await backoff.failed(exc)
        else:
            if backoff.attempt:
                failures = f"step failed {backoff.attempt} times, then recovered"
                await _report(ctx, f"service={service.name} {failures}: {backoff.last_error}")
            backoff.succeeded()


async def _report(ctx: Context, message: str) -> None:
    """Keep `message` among the recent errors of the instance's namespace, if it has one
    (the lifecycle hook names it); best effort, as Redis may be what failed."""
    if ctx.namespace:
        with contextlib.suppress(*TRANSIENT):
            await record_error(ctx.lifecycle_redis, ctx.namespace, message, ctx.instance_key)


async def _tick_loop(hooks: Sequence[Hook], ctx: Context, interval: float) -> None:
    backoff = Backoff("lifecycle tick")
    while not ctx.stopping.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), interval)
            return
        try:
            for hook in hooks:
                await hook.tick(ctx)
        except ShutdownRequested as exc:
            log.info("shutdown requested reason=%r", str(exc))
            ctx.stopping.set()
        except TRANSIENT as exc:
            await backoff.failed(exc)
        else:
            backoff.succeeded()


async def run_service(
    service: Service,
    config: ServiceConfig,
    hooks: Sequence[Hook] = (),
    stopping: asyncio.Event | None = None,
    tick_interval: float | None = None,
) -> None:
    """Run `service` until `stopping` is set (by a signal handler, a hook, or the caller).

    The hooks tick every `tick_interval` seconds, by default `check_interval`'s: often enough
    to notice a deleted lifecycle hash well within ``popTimeout``. Installs no signal handlers:
    the CLI does that, so library users can embed services.
    """
    if config.redis is None:
        raise ValueError("run_service needs config.redis; the CLI resolves the default server")
    ctx = Context(config, connect(config.redis), stopping or asyncio.Event())
    if config.service_redis:
        ctx.service_redis = connect(config.service_redis)
    log.info(
        "service=%s starting redis=%s config=%s",
        service.name,
        mask_url(config.redis),
        masked(config),
    )
    started: list[Hook] = []
    ticker: asyncio.Task[None] | None = None
    try:
        for hook in hooks:
            await _start(hook, ctx)
            started.append(hook)
        interval = tick_interval or check_interval(config.service_renew, config.pop_timeout)
        ticker = asyncio.create_task(_tick_loop(started, ctx, interval))
        await _step_loop(service, ctx)
    except Exception as exc:
        if not isinstance(exc, ShutdownRequested):
            await _report(ctx, f"service={service.name} stopped by an error: {exc!r}")
        raise
    finally:
        ctx.stopping.set()
        if ticker is not None:
            await ticker
        for hook in reversed(started):
            with contextlib.suppress(*TRANSIENT):
                await hook.stop(ctx)
        await _close(ctx)
        log.info("service=%s stopped instance=%s", service.name, ctx.instance_id or "-")


async def _start(hook: Hook, ctx: Context) -> None:
    """Start `hook`, retrying transient errors (a failover, a restart in progress) for up to
    START_ATTEMPTS backoff steps, about 20 s; then the error stops the service."""
    backoff = Backoff("service start")
    while True:
        try:
            await hook.start(ctx)
        except TRANSIENT as exc:
            if ctx.stopping.is_set() or backoff.attempt >= START_ATTEMPTS:
                raise
            await backoff.failed(exc)
        else:
            backoff.succeeded()
            return


async def _close(ctx: Context) -> None:
    for client in (ctx.redis, ctx.service_redis):
        if client is not None:
            with contextlib.suppress(*TRANSIENT):
                await client.aclose()
