"""What the services page reads: each namespace's instances, desired vs live replicas, health
and recent errors (the same sources as `redline status`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.connection import AsyncClient
from redline.runtime.desired import all_desired
from redline.runtime.metrics import read_metrics, recent_errors
from redline.scaling import registry
from redline.scaling.cscale import read_specs
from redline.scaling.health import Health, HealthPolicy, assess, assess_instance
from redline.scaling.registry import Instance
from redline.scaling.rollout import desired_revision, rollout_state

__all__ = ["ServiceView", "namespaces", "replica_counts", "service_views"]


@dataclass(frozen=True)
class ServiceView:
    """One namespace: its live instances (with each one's health), desired replicas, health."""

    namespace: str
    desired: int | None
    instances: list[tuple[Instance, Health]]
    health: Health
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> int:
        return sum(1 for i, _ in self.instances if i.role == "active")


async def namespaces(client: AsyncClient, configured: Sequence[str]) -> list[str]:
    """Registered namespaces, those with a desired count, and the configured ones (sorted)."""
    found = [*(await registry.services(client)), *(await all_desired(client)), *configured]
    return sorted(set(found))


async def replica_counts(client: AsyncClient, configured: Sequence[str]) -> dict[str, Any]:
    """Per namespace what the services page shows that a live page must follow: live
    instances (count, and each one's id, role and revision) and desired replicas (None when
    unset), the desired revision and the last rollout's state. A rollout changes it even when
    the replica counts end where they began (one instance replaced by another)."""
    desired, specs = await all_desired(client), await read_specs(client)
    counts = {}
    for ns in sorted({*(await namespaces(client, configured)), *specs}):
        live = await registry.instances(client, ns)
        counts[ns] = {
            "live": len(live),
            "desired": desired.get(ns),
            "instances": [[i.id, i.role, i.fields.get("revision", "0")] for i in live],
            "revision": (await desired_revision(client, ns)).number,
            "rollout": await rollout_state(client, ns),
        }
    return counts


async def _view(
    client: AsyncClient, ns: str, desired: int | None, spec: dict[str, Any]
) -> ServiceView:
    policy = HealthPolicy.model_validate(spec.get("health", {}))
    live = await registry.instances(client, ns)
    judged = [(i, assess_instance(i.fields, policy)) for i in live]
    health = assess(await read_metrics(client, ns), policy)
    return ServiceView(ns, desired, judged, health, await recent_errors(client, ns, 8))


async def service_views(client: AsyncClient, configured: Sequence[str]) -> list[ServiceView]:
    """Every namespace the dashboard knows of, as the services page shows it."""
    desired, specs = await all_desired(client), await read_specs(client)
    names = sorted({*(await namespaces(client, configured)), *specs})
    return [await _view(client, ns, desired.get(ns), specs.get(ns, {})) for ns in names]
