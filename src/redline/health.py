"""Health of a service from its ``<ns>:metrics:<name>`` hashes: errors and timeouts per call.

A metric hash counts observations (``count``) and, when measured against a timeout, those
above it (``above``); a metric named ``errors`` (or ending in ``:errors``/``_errors``) counts
failures. A service is unhealthy when, over at least `min_count` observations, the share of
timeouts or of errors passes `threshold`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Health", "assess"]

Metrics = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Health:
    """``ok`` and, when not, why (shown by `redline status`)."""

    ok: bool
    reason: str = ""


def _is_errors(name: str) -> bool:
    return name == "errors" or name.endswith((":errors", "_errors"))


def assess(metrics: Metrics, threshold: float = 0.1, min_count: int = 10) -> Health:
    """Judge a service by its metric hashes (name → fields)."""
    calls = sum(m.get("count", 0) for name, m in metrics.items() if not _is_errors(name))
    errors = sum(m.get("count", 0) for name, m in metrics.items() if _is_errors(name))
    timeouts = sum(m.get("above", 0) for m in metrics.values())
    if calls < min_count:
        return Health(True)
    for what, bad in (("errors", errors), ("timeouts", timeouts)):
        if bad / calls > threshold:
            return Health(False, f"{what} {bad}/{calls} = {bad / calls:.0%} > {threshold:.0%}")
    return Health(True)
