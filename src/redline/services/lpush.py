"""lpush: every message from ``in`` onto one ``out`` list on the same server, atomically.

The seed's lpush for same-instance queues: mpush with one output, under its own name.
"""

from __future__ import annotations

from pydantic import Field

from redline.runtime import Hook
from redline.services.forward import FanOut, ForwardConfig, Forwarder, forwarding

__all__ = ["LpushConfig", "build"]


class LpushConfig(ForwardConfig):
    """``in``, ``pending``, ``out`` (one list), ``popTimeout`` and the common fields."""

    out: str = Field(min_length=1, description="the output list")


def route(config: LpushConfig) -> FanOut:
    return FanOut((config.out,))


def build(config: LpushConfig) -> tuple[Forwarder, list[Hook]]:
    """The lpush service and its hooks, ready for `redline.runtime.run_service`."""
    return forwarding("lpush", config, route(config))
