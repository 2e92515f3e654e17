"""mpush: every message from ``in`` onto every ``out`` list, atomically (the seed's service).

A publish/subscribe that survives offline subscribers: each subscriber pops its own list.
"""

from __future__ import annotations

from pydantic import Field

from redline.runtime import Hook
from redline.services.forward import FanOut, ForwardConfig, Forwarder, forwarding

__all__ = ["MpushConfig", "build"]


class MpushConfig(ForwardConfig):
    """The seed's fields: ``redis``, ``in``, ``pending``, ``out`` (a list), ``popTimeout``, …"""

    out: list[str] = Field(min_length=1, description="output lists, one per subscriber")


def route(config: MpushConfig) -> FanOut:
    return FanOut(tuple(config.out))


def build(config: MpushConfig) -> tuple[Forwarder, list[Hook]]:
    """The mpush service and its hooks, ready for `redline.runtime.run_service`."""
    return forwarding("mpush", config, route(config))
