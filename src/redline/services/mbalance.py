"""mbalance: each message onto the output with the least back-pressure (the shortest list).

The choice and the push happen in one script, per message, so concurrent replicas never race on
a stale length. Ties go to the output listed first. With ``maxLength`` (one number for every
output, or ``{"out": n}`` per output) a full output gets nothing more; when all are full mbalance
waits (back-pressure) and counts the waits in ``<ns>:metrics:backpressure``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from redline.runtime import Hook
from redline.services.forward import Balance, ForwardConfig, Forwarder, forwarding

__all__ = ["MbalanceConfig", "build"]


class MbalanceConfig(ForwardConfig):
    """``in``, ``pending``, ``out`` (a list), optional ``maxLength``, and the common fields."""

    out: list[str] = Field(min_length=1, description="work queues to balance across")
    max_length: int | dict[str, int] | None = Field(
        None, alias="maxLength", description="limit per output: one number, or {out: number}"
    )

    @model_validator(mode="after")
    def _limits_name_outputs(self) -> MbalanceConfig:
        limits = self.max_length
        if isinstance(limits, dict):
            unknown = sorted(set(limits) - set(self.out))
            if unknown:
                raise ValueError(f"maxLength names {unknown}, which are not in out {self.out}")
            bad = {k: v for k, v in limits.items() if v < 1}
        else:
            bad = {"*": limits} if limits is not None and limits < 1 else {}
        if bad:
            raise ValueError(f"maxLength must be at least 1, got {bad}")
        return self

    def limits(self) -> tuple[int, ...]:
        """The limit of each output in `out` order (0: none)."""
        if isinstance(self.max_length, dict):
            return tuple(self.max_length.get(out, 0) for out in self.out)
        return tuple(self.max_length or 0 for _ in self.out)


def route(config: MbalanceConfig) -> Balance:
    return Balance(tuple(config.out), config.limits())


def build(config: MbalanceConfig) -> tuple[Forwarder, list[Hook]]:
    """The mbalance service and its hooks, ready for `redline.runtime.run_service`."""
    return forwarding("mbalance", config, route(config))
