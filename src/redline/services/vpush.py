"""The vpush service: move messages from a queue on one Redis to a list on another, exactly once.

- **One at a time across all replicas.** Replicas elect one active transferrer with a lease key
  on the input server (``{in}:vpush:lease`` = ``<instance>#<token>``, the token from an INCR
  counter). Every input-side script checks the lease value, so an instance that lost its lease is
  fenced off; standbys poll the lease and take over within the lease time.
- **Nothing lost.** The active instance claims a message (or, with ``batch`` > 1, an ordered
  batch) by moving it into ``{in}:vpush:transfer`` and giving it a transfer id kept beside it in
  ``{in}:vpush:transfer-id``, in one script. It stays there until it is on the remote.
- **Nothing pushed twice.** On the remote one script sets ``{out}:vpush:<transfer id>`` (NX,
  expiring after ``dedupeWindow``) and pushes, so a retry after a crash, a takeover or a lost
  reply finds the record and does not push again.
- **Retried forever**, with exponential backoff and jitter capped at ``retryMax``, one log line
  per backoff step, and the retry count and last error in the metrics.

Like every service it runs with the standard hooks (`build`): it registers with the lifecycle
(its lease holder is named after its ``<ns>:<id>`` hash, so deleting that hash stops it) and
writes its metrics through `redline.runtime.metrics.Metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

import redis.exceptions
from pydantic import Field, model_validator

from redline.backoff import delay_for
from redline.config import ServiceConfig
from redline.connection import AsyncClient, connect, mask_url
from redline.keys import derived
from redline.runtime import Context, Hook, assemble
from redline.runtime.metrics import Metrics
from redline.scripting.scripts import run
from redline.services.pending import blocking_move

__all__ = ["Transfer", "VpushConfig", "VpushKeys", "VpushService", "build"]

log = logging.getLogger(__name__)

# Anything the remote can answer with, or fail by, is retried: the message must get there.
REMOTE_ERRORS = (redis.exceptions.RedisError, OSError)


class VpushConfig(ServiceConfig):
    """Configuration of `redline vpush`."""

    in_queue: str = Field(alias="in", min_length=1, description="input queue (on `redis`)")
    out: str = Field(min_length=1, description="output list on `outRedis`")
    out_redis: str = Field(alias="outRedis", min_length=1, description="the remote's Redis URL")
    batch: int = Field(1, ge=1, le=1000, description="messages moved together, in order")
    lease: float = Field(10, gt=0, description="seconds before a standby takes over")
    dedupe_window: float = Field(86400, alias="dedupeWindow", gt=0, description="seconds")
    retry_base: float = Field(0.1, alias="retryBase", gt=0, description="first retry delay, s")
    retry_max: float = Field(30, alias="retryMax", gt=0, description="longest retry delay, s")

    @model_validator(mode="after")
    def _consistent(self) -> VpushConfig:
        if self.dedupe_window < 10 * self.lease:
            raise ValueError(
                f"dedupeWindow ({self.dedupe_window}) must be at least 10 times lease "
                f"({self.lease}): a standby retrying a transfer must still find its record"
            )
        if self.retry_max < self.retry_base:
            raise ValueError(f"retryMax ({self.retry_max}) is below retryBase ({self.retry_base})")
        return self


@dataclass(frozen=True)
class VpushKeys:
    """Every key vpush uses, derived from the queue names (input keys share the input's slot)."""

    in_queue: str
    lease: str
    fence: str
    transfer: str
    transfer_id: str
    out: str

    @classmethod
    def of(cls, config: VpushConfig) -> VpushKeys:
        inq = config.in_queue
        return cls(
            inq,
            derived(inq, "vpush", "lease"),
            derived(inq, "vpush", "fence"),
            derived(inq, "vpush", "transfer"),
            derived(inq, "vpush", "transfer-id"),
            config.out,
        )

    def dedupe(self, transfer_id: str) -> str:
        """The remote record of a transfer, in the output list's slot."""
        return derived(self.out, "vpush", transfer_id)


@dataclass(frozen=True)
class Transfer:
    """Messages claimed together (oldest first) under one transfer id."""

    id: str
    messages: tuple[bytes, ...]


async def _sleep(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; False if `stopping` was set meanwhile."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return not stopping.is_set()


class VpushService:
    """The vpush loop (`step`) and its runner hook (name itself, release the lease, close)."""

    name = "vpush"

    def __init__(
        self, config: VpushConfig, metrics: Metrics, remote: AsyncClient | None = None
    ) -> None:
        self.config, self.metrics = config, metrics
        self.instance = ""  # the lifecycle hash (<ns>:<id>), known at start
        self.keys = VpushKeys.of(config)
        timeout = max(1.0, config.lease / 2)  # a hung remote must not outlast the lease
        self.remote = remote or connect(
            config.out_redis, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.holder: str | None = None  # "<instance>#<token>" while this instance is active
        self._renewed = 0.0
        self._done = ""  # transfer on the remote but not yet finished on the input side

    @property
    def serves(self) -> str:
        return f"{self.keys.in_queue} -> {mask_url(self.config.out_redis)} {self.keys.out}"

    async def step(self, ctx: Context) -> None:
        """Move one transfer, or wait (as standby, or for input) up to popTimeout."""
        holder = await self._lease(ctx)
        wait = min(self.config.pop_timeout, self.config.lease / 3)
        if holder is None:
            await _sleep(ctx.stopping, wait)
            return
        transfer = await self._claim(ctx.redis, holder, self.config.batch)
        if transfer is None:
            if self.holder is not None:  # idle: block until input arrives, leave it in place
                queue = self.keys.in_queue
                await blocking_move(ctx, queue, queue, wait, ("RIGHT", "RIGHT"))
            return
        if await self._deliver(ctx, transfer):
            self._done = transfer.id

    async def _lease(self, ctx: Context, force: bool = False) -> str | None:
        now = time.monotonic()
        if self.holder and not force and now - self._renewed < self.config.lease / 3:
            return self.holder
        ms = int(self.config.lease * 1000)
        token = int(
            await run(
                ctx.redis, "vpush_lease", [self.keys.lease, self.keys.fence], [self.instance, ms]
            )
        )
        self._renewed = now
        holder = f"{self.instance}#{token}" if token else None
        if holder != self.holder:
            await self._changed(ctx, holder)
        return holder

    async def _changed(self, ctx: Context, holder: str | None) -> None:
        if holder is None:
            log.warning("vpush lease lost instance=%s: standing by", self.instance)
        else:
            token = int(holder.rsplit("#", 1)[1])
            log.info("vpush active instance=%s token=%s", self.instance, token)
            self.metrics.count("lease")
            self.metrics.set("lease", active=self.instance, token=token)
        self.holder, self._done = holder, ""

    async def _claim(self, client: AsyncClient, holder: str, batch: int) -> Transfer | None:
        keys = [self.keys.in_queue, self.keys.transfer, self.keys.transfer_id, self.keys.lease]
        reply = await run(client, "vpush_next", keys, [holder, batch, uuid.uuid4().hex, self._done])
        self._done = ""
        if reply == -1:
            log.warning(
                "vpush fenced off instance=%s: another instance holds the lease", self.instance
            )
            self.holder = None
            return None
        if not reply:
            return None
        return Transfer(reply[0].decode(), tuple(reply[1:]))

    async def _deliver(self, ctx: Context, transfer: Transfer) -> bool:
        """Push `transfer` until it is on the remote; False if stopping or the lease was lost."""
        began, attempt = time.monotonic(), 0
        window = int(self.config.dedupe_window * 1000)
        keys = [self.keys.out, self.keys.dedupe(transfer.id)]
        while True:
            try:
                pushed = await run(self.remote, "vpush_push", keys, [window, *transfer.messages])
            except REMOTE_ERRORS as exc:
                attempt += 1
                delay = delay_for(attempt, self.config.retry_base, self.config.retry_max)
                await self._failed(ctx, transfer, attempt, exc, delay)
                if not await self._pause(ctx, delay):
                    return False
                continue
            await self._delivered(ctx, transfer, attempt, not pushed, time.monotonic() - began)
            return True

    async def _pause(self, ctx: Context, seconds: float) -> bool:
        """Wait before a retry, renewing the lease; False if stopping or no longer active."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not await _sleep(ctx.stopping, min(left, self.config.lease / 3)):
                return False
            if await self._lease(ctx) is None:
                return False
        return True

    async def _failed(
        self, ctx: Context, transfer: Transfer, attempt: int, exc: BaseException, delay: float
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        growing = self.config.retry_base * 2 ** (attempt - 2) < self.config.retry_max
        if growing or attempt % 10 == 0:  # one line per backoff step, then every tenth
            log.warning(
                "vpush push failed transfer=%s attempt=%d error=%r retry_in=%.2fs",
                transfer.id,
                attempt,
                error,
                delay,
            )
        self.metrics.count("retries")
        self.metrics.set("retries", attempt=attempt, lastError=error, lastErrorAt=int(time.time()))

    async def _delivered(
        self, ctx: Context, transfer: Transfer, attempt: int, duplicate: bool, seconds: float
    ) -> None:
        if attempt or duplicate:
            log.info(
                "vpush delivered transfer=%s messages=%d after_retries=%d already_on_remote=%s",
                transfer.id,
                len(transfer.messages),
                attempt,
                duplicate,
            )
        self.metrics.observe("transfers", seconds * 1000, histogram=False)
        self.metrics.count("forwarded", len(transfer.messages))
        if duplicate:
            self.metrics.count("duplicates")
        if attempt:
            self.metrics.set("retries", attempt=0)

    # Runner hook: on a clean stop, finish what is delivered and hand the lease over at once.
    async def start(self, ctx: Context) -> None:
        self.instance = ctx.instance_key or ctx.instance_id
        if not self.instance:
            raise RuntimeError("vpush needs the Lifecycle hook before it (an instance name)")
        log.info("vpush instance=%s in=%s out=%s", self.instance, self.keys.in_queue, self.keys.out)

    async def tick(self, ctx: Context) -> None:
        return None

    async def stop(self, ctx: Context) -> None:
        try:
            if self.holder:
                if self._done:
                    await self._claim(ctx.redis, self.holder, 0)
                await run(ctx.redis, "vpush_release", [self.keys.lease], [self.holder])
        finally:
            await self.remote.aclose()


def build(
    config: VpushConfig, remote: AsyncClient | None = None
) -> tuple[VpushService, list[Hook]]:
    """The vpush service and its hooks, for `redline.runtime.run_service`; its lease holder sits
    beside ``in``, so its namespace does too."""
    assembly = assemble("vpush", config, queue=config.in_queue)
    service = VpushService(config, assembly.metrics, remote)
    assembly.lifecycle.serves = service.serves
    return service, assembly.hooks(service)
