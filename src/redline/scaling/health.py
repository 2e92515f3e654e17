"""Health of a service, and of each of its instances since its start: errors and timeouts per call.

A service is judged by its ``<ns>:metrics:<name>`` hashes: observations (``count``), those above
their timeout (``above``) and failures (metrics named ``errors``, see
`redline.runtime.metrics.is_error_metric`). An instance is judged by the same totals kept in its own
lifecycle hash since it started (``calls``, ``timeouts``, ``errors``, written by
`redline.runtime.metrics`), so one bad replica shows even when the service as a whole looks
fine, and a replacement starts with a clean slate. Either is unhealthy when, over at least
`min_count` calls, the share of timeouts or of errors passes `threshold` (a cscale file sets both
per service: ``health = {threshold = 0.05, minCount = 20}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from redline.runtime.metrics import is_error_metric

__all__ = ["DEFAULT_POLICY", "Health", "HealthPolicy", "assess", "assess_instance"]

Metrics = Mapping[str, Mapping[str, int]]


class HealthPolicy(BaseModel):
    """When errors or timeouts make a service or an instance unhealthy."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    threshold: float = Field(0.1, gt=0, le=1, description="share of calls that may fail")
    min_count: int = Field(10, alias="minCount", ge=1, description="calls before judging")


DEFAULT_POLICY = HealthPolicy.model_validate({})


@dataclass(frozen=True)
class Health:
    """``ok`` and, when not, why (shown by `redline status`)."""

    ok: bool
    reason: str = ""


def _judge(calls: int, errors: int, timeouts: int, policy: HealthPolicy) -> Health:
    if calls < policy.min_count:
        return Health(True)
    for what, bad in (("errors", errors), ("timeouts", timeouts)):
        if bad / calls > policy.threshold:
            share = f"{bad / calls:.0%} > {policy.threshold:.0%}"
            return Health(False, f"{what} {bad}/{calls} = {share}")
    return Health(True)


def assess(metrics: Metrics, policy: HealthPolicy | None = None) -> Health:
    """Judge a service by its metric hashes (name → fields)."""
    calls = sum(m.get("count", 0) for name, m in metrics.items() if not is_error_metric(name))
    errors = sum(m.get("count", 0) for name, m in metrics.items() if is_error_metric(name))
    timeouts = sum(m.get("above", 0) for m in metrics.values())
    return _judge(calls, errors, timeouts, policy or DEFAULT_POLICY)


def assess_instance(fields: Mapping[str, str], policy: HealthPolicy | None = None) -> Health:
    """Judge one instance by the totals in its lifecycle hash (`redline.scaling.registry.Instance`'s
    ``fields``)."""

    def total(name: str) -> int:
        value = fields.get(name, "0")
        return int(value) if value.isdigit() else 0

    return _judge(total("calls"), total("errors"), total("timeouts"), policy or DEFAULT_POLICY)
