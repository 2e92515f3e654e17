"""What a running service and its hooks share (`Context`), and what they are (`Service`, `Hook`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from redline.config import ServiceConfig
from redline.connection import AsyncClient

__all__ = ["Context", "Hook", "Service"]


@dataclass
class Context:
    """What a running service and its hooks share.

    `namespace` and `instance_key` (the lifecycle hash ``<ns>:<id>``) are set by the lifecycle
    hook when the instance registers; until then, and for a process without one, they are empty.
    """

    config: ServiceConfig
    redis: AsyncClient
    stopping: asyncio.Event
    instance_id: str = ""
    service_redis: AsyncClient | None = None
    namespace: str = ""
    instance_key: str = ""

    @property
    def lifecycle_redis(self) -> AsyncClient:
        """The client for lifecycle/metrics keys (``serviceRedis`` when set)."""
        return self.service_redis or self.redis


class Service(Protocol):
    """Does one unit of work per `step`, returning within ``popTimeout`` (`runtime.runner`)."""

    name: str

    async def step(self, ctx: Context) -> None: ...


class Hook(Protocol):
    """Runs around a service's loop: `start` before the first step, `tick` beside it, `stop`
    after the last step."""

    async def start(self, ctx: Context) -> None: ...

    async def tick(self, ctx: Context) -> None: ...

    async def stop(self, ctx: Context) -> None: ...
