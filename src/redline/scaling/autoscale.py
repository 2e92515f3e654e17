"""The autoscaling policy: replicas from a queue's backlog, up fast, down slowly.

The one policy of both scalers, the cscale agent and `redline up`. The backlog is what waits
on the queue plus what is in flight (taken by a consumer and not yet acknowledged: work under
way); a plain list has nothing in flight, so for it the backlog is its length.
``want = ceil(backlog / perReplica)``, clamped to ``[min, max]``. When `want` is above the
current desired count the policy scales up at once, straight to `want`. When it is below, the
policy waits until it has stayed below for ``downAfter`` seconds (and ``downAfter`` has passed
since the last change), then scales down by one — so a queue that drains in bursts does not make
the count flap. Every decision carries its reason, which the agent logs and records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from redline.queue import QueueInfo

__all__ = ["AutoscalePolicy", "Autoscaler", "Decision", "backlog"]


def backlog(info: QueueInfo) -> int:
    """The backlog the policy counts: waiting (claim list included) plus in flight."""
    return info.waiting + info.inflight


class AutoscalePolicy(BaseModel):
    """``[services."<ns>".autoscale]`` in a cscale file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    queue: str = Field(description="the queue whose backlog drives the count")
    per_replica: int = Field(alias="perReplica", gt=0, description="target backlog per replica")
    min: int = Field(1, ge=0)
    max: int = Field(gt=0)
    interval: float = Field(5, gt=0, description="seconds between evaluations")
    down_after: float = Field(60, alias="downAfter", ge=0, description="hold time before down")

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalePolicy:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
        return self


@dataclass(frozen=True)
class Decision:
    """A new desired count and why."""

    replicas: int
    reason: str


@dataclass
class Autoscaler:
    """The policy's memory: since when fewer replicas would do, and when it last changed."""

    policy: AutoscalePolicy
    below_since: float | None = None
    last_change: float = -math.inf

    def want(self, length: int) -> int:
        """The replica count the backlog `length` asks for, within the bounds."""
        needed = math.ceil(length / self.policy.per_replica)
        return max(self.policy.min, min(self.policy.max, needed))

    def decide(self, now: float, length: int, current: int) -> Decision | None:
        """The change to make now (None: keep `current`)."""
        p, want = self.policy, self.want(length)
        if want > current or current > p.max:
            target = min(want if want > current else p.max, p.max)
            self.below_since, self.last_change = None, now
            return Decision(target, f"queue {p.queue} backlog={length} wants {want} (max {p.max})")
        if want == current:
            self.below_since = None
            return None
        if self.below_since is None:
            self.below_since = now
        held, quiet = now - self.below_since, now - self.last_change
        if held < p.down_after or quiet < p.down_after:
            return None
        self.last_change = now
        reason = f"queue {p.queue} backlog={length} wanted {want} for {held:.0f}s: one down"
        return Decision(current - 1, reason)
