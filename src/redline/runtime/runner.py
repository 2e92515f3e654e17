"""The one loop every service runs on: connect, start hooks, step until stopped, stop hooks.

A service is an object with ``name`` and an async ``step(ctx)`` that does one unit of work and
returns within ``pop_timeout`` seconds (a blocking pop has that timeout), so that a stop request
is honoured within that time and the message in hand is always finished, never dropped.

Everything around the loop — lifecycle registration and renewal, metrics monitors — is a
`Hook`: ``start`` before the first step, ``tick`` every ``tick_interval`` seconds beside the
loop, ``stop`` after the last step. A hook that raises `ShutdownRequested` stops the service.

A step that fails is kept among the namespace's recent errors
(`redline.runtime.metrics.record_error`): a run of transient failures once the step succeeds
again (Redis is reachable then), an exception that ends the service before it propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.exceptions

from redline.backoff import Backoff
from redline.config import ServiceConfig, masked
from redline.connection import AsyncClient, connect, mask_url
from redline.errors import ShutdownRequested
from redline.runtime.metrics import record_error

__all__ = ["Context", "Hook", "Service", "run_service"]

log = logging.getLogger(__name__)

# Errors that mean "the server is unreachable for now": retried with backoff, never fatal.
# On a cluster that includes a topology in motion: redirections that outlast redis-py's retries
# while a slot migrates (TRYAGAIN, "TTL exhausted"), a failover (CLUSTERDOWN, READONLY).
TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
)
START_ATTEMPTS = 8


@dataclass
class Context:
    """What a running service and its hooks share."""

    config: ServiceConfig
    redis: AsyncClient
    stopping: asyncio.Event
    instance_id: str = ""
    service_redis: AsyncClient | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def lifecycle_redis(self) -> AsyncClient:
        """The client for lifecycle/metrics keys (``serviceRedis`` when set)."""
        return self.service_redis or self.redis


class Service(Protocol):
    name: str

    async def step(self, ctx: Context) -> None: ...


class Hook(Protocol):
    async def start(self, ctx: Context) -> None: ...

    async def tick(self, ctx: Context) -> None: ...

    async def stop(self, ctx: Context) -> None: ...


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
    ns, instance = ctx.extra.get("namespace"), ctx.extra.get("lifecycle_key", "")
    if ns:
        with contextlib.suppress(*TRANSIENT):
            await record_error(ctx.lifecycle_redis, str(ns), message, str(instance))


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

    Installs no signal handlers: the CLI does that, so library users can embed services.
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
        ticker = asyncio.create_task(
            _tick_loop(started, ctx, tick_interval or config.service_renew)
        )
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
