"""cscale: declarative scaling — desired replica counts are data in Redis.

A "service" here is a lifecycle namespace: its live instances are the ``<ns>:<id>`` hashes that
`redline.scaling.registry` lists. The control-plane keys (all names built here):

- ``redline:scale`` and ``{<ns>}:cscale:active`` — desired counts and active slots, whose names
  `redline.runtime.desired` builds (a standby reads them there)
- ``redline:cscale:specs`` — hash namespace → JSON of the spec the agents run (for status)
- ``redline:cscale:agents`` — sorted set of agent host names, scored by last heartbeat (s)
- ``redline:cscale:events`` — list of recent decisions and failures, newest first (JSON)
- ``{<ns>}:cscale:lock`` — the per-service lease an agent holds while it decides
- ``{<ns>}:cscale:starting`` — sorted set of start claims, scored by their deadline (ms)
- ``{<ns>}:cscale:autoscale`` — the lease of the agent that runs the autoscaling policy

The agent itself is `redline.scaling.cscale_agent`; this module holds the spec, the keys and the
decisions, which are plain functions.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from redline.config import load_config
from redline.connection import AsyncClient, text
from redline.keys import derived
from redline.runtime.desired import DESIRED_KEY, active_key, get_desired, set_desired
from redline.scaling.autoscale import AutoscalePolicy
from redline.scaling.health import DEFAULT_POLICY, HealthPolicy
from redline.scaling.registry import Instance
from redline.scaling.rollout import RolloutPolicy

__all__ = [
    "AGENTS_KEY",
    "DESIRED_KEY",
    "EVENTS_KEPT",
    "EVENTS_KEY",
    "SPECS_KEY",
    "ScaleFile",
    "ServiceSpec",
    "active_key",
    "autoscale_key",
    "choose_victims",
    "claim_name",
    "event_json",
    "get_desired",
    "load_scale_file",
    "lock_key",
    "read_specs",
    "recent_events",
    "record_event",
    "set_desired",
    "split_claims",
    "starting_key",
]

SPECS_KEY = "redline:cscale:specs"
EVENTS_KEY = "redline:cscale:events"
AGENTS_KEY = "redline:cscale:agents"
EVENTS_KEPT = 100


def lock_key(ns: str) -> str:
    return derived(ns, "cscale", "lock")


def starting_key(ns: str) -> str:
    return derived(ns, "cscale", "starting")


def autoscale_key(ns: str) -> str:
    return derived(ns, "cscale", "autoscale")


class ServiceSpec(BaseModel):
    """How to run one service: its command, how many, and its policy.

    ``service = "lpush"`` runs ``python -m redline lpush``; ``argv = [...]`` runs any program
    that takes ``--config``, ``--redis`` and ``--set`` the way redline services do.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    service: str | None = Field(None, description="redline subcommand, e.g. lpush")
    argv: list[str] | None = Field(None, description="full command instead of `service`")
    config: Path | None = Field(None, description="the service's config file")
    sets: list[str] = Field(default_factory=list, description="extra --set FIELD=VALUE")
    replicas: int | None = Field(None, ge=0, description="desired count when Redis has none")
    standby: int = Field(0, ge=0, description="idle registered instances kept ready")
    capacity: int = Field(100, gt=0, description="serviceCapacity given to each instance")
    start_timeout: float = Field(30, alias="startTimeout", gt=0)
    autoscale: AutoscalePolicy | None = None
    health: HealthPolicy = Field(DEFAULT_POLICY, description="when it counts as unhealthy")
    rollout: RolloutPolicy = Field(
        RolloutPolicy.model_validate({}), description="how a new revision replaces the old"
    )

    @model_validator(mode="after")
    def _one_command(self) -> ServiceSpec:
        if (self.service is None) == (self.argv is None):
            raise ValueError("give exactly one of `service` (a redline command) or `argv`")
        return self


class ScaleFile(BaseModel):
    """A cscale file: ``[services."<namespace>"]`` tables, one per service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    services: dict[str, ServiceSpec]


def load_scale_file(path: Path) -> ScaleFile:
    """Read and validate a cscale file (TOML or JSON); raises ConfigError listing problems."""
    return load_config(ScaleFile, path)


async def read_specs(client: AsyncClient) -> dict[str, dict[str, Any]]:
    """Every namespace's spec as its agents last published it (`SPECS_KEY`), as JSON data."""
    return {text(k): json.loads(v) for k, v in (await client.hgetall(SPECS_KEY)).items()}


def event_json(ns: str, message: str, **extra: Any) -> str:
    """One entry of the recent events (`EVENTS_KEY`, newest first, `EVENTS_KEPT` kept)."""
    event = {"t": time.time(), "ns": ns, "host": socket.gethostname(), "msg": message, **extra}
    return json.dumps(event)


async def record_event(client: AsyncClient, ns: str, message: str, **extra: Any) -> None:
    """Add a decision or failure to the recent events `redline status` shows."""
    pipe = client.pipeline(transaction=False)
    pipe.lpush(EVENTS_KEY, event_json(ns, message, **extra))
    pipe.ltrim(EVENTS_KEY, 0, EVENTS_KEPT - 1)
    await pipe.execute()


async def recent_events(client: AsyncClient, count: int = 10) -> list[dict[str, Any]]:
    """The newest `count` events."""
    return [json.loads(raw) for raw in await client.lrange(EVENTS_KEY, 0, count - 1)]


def choose_victims(live: Sequence[Instance], count: int, active_limit: int) -> list[Instance]:
    """The `count` instances to stop: the newest, starting with active ones beyond the limit
    (so that scaling down keeps the standbys that are asked for)."""
    newest = sorted(live, key=lambda inst: int(inst.id) if inst.id.isdigit() else 0, reverse=True)
    active = [inst for inst in newest if inst.role == "active"]
    surplus = active[: max(0, len(active) - active_limit)]
    rest = [inst for inst in newest if inst not in surplus]
    return (surplus + rest)[: max(0, count)]


def claim_name(agent: str, machine: str, pid: int) -> str:
    """The start claim of process `pid` on `machine`, started by `agent`."""
    return f"{agent}:{machine}:{pid}"


def split_claims(claims: Sequence[Any], live: Sequence[Instance]) -> tuple[list[str], list[str]]:
    """The claims whose process is not among the `live` instances (still starting), and those
    whose process is (registered: the claim has done its job and may be dropped by anyone)."""
    running = {(inst.host, inst.pid) for inst in live}
    names = [text(c) for c in claims]
    registered = [c for c in names if _machine_pid(c) in running]
    return [c for c in names if c not in registered], registered


def _machine_pid(claim: str) -> tuple[str, int]:
    parts = claim.rsplit(":", 2)
    if len(parts) < 3 or not parts[2].isdigit():
        return "", -1  # not a process's claim: it always counts
    return parts[1], int(parts[2])
