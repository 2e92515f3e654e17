"""Interim metrics accumulator for the web services, until `redline.metrics` lands on main.

Same shape as `redline.metrics.Metrics` (``count``, ``observe``, ``flush`` and the runner-hook
methods), so the swap is one import. Known gap: ``max`` is read-then-set, not atomic across
replicas (the real module does it in one script).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from redline.connection import AsyncClient
from redline.runner import Context

__all__ = ["Metrics"]


def _bucket(value: float, timeout: float) -> str:
    if value > timeout:
        return "above"
    return f"histo{max(1, math.ceil(10 * value / timeout)) * 10}" if timeout > 0 else "histo100"


@dataclass
class Metrics:
    """Observations kept in memory; added to ``<ns>:metrics:<name>`` hashes on each flush."""

    namespace: str
    timeout_ms: int = 10_000
    _fields: dict[str, dict[str, int]] = field(default_factory=dict)
    _max: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, amount: int = 1) -> None:
        fields = self._fields.setdefault(name, {})
        fields["count"] = fields.get("count", 0) + amount

    def observe(self, name: str, millis: float, histogram: bool = True) -> None:
        value = round(millis)
        fields = self._fields.setdefault(name, {})
        for key in ("count", "sum", _bucket(value, self.timeout_ms) if histogram else ""):
            if key:
                fields[key] = fields.get(key, 0) + (value if key == "sum" else 1)
        self._max[name] = max(self._max.get(name, value), value)

    async def flush(self, client: AsyncClient) -> None:
        fields, self._fields = self._fields, {}
        highs, self._max = self._max, {}
        pipe = client.pipeline(transaction=False)
        for name, counts in fields.items():
            for key, amount in counts.items():
                pipe.hincrby(f"{self.namespace}:metrics:{name}", key, amount)
        await pipe.execute()
        for name, high in highs.items():
            key = f"{self.namespace}:metrics:{name}"
            if int(await client.hget(key, "max") or -1) < high:
                await client.hset(key, "max", high)

    async def start(self, ctx: Context) -> None:
        return None

    async def tick(self, ctx: Context) -> None:
        await self.flush(ctx.lifecycle_redis)

    async def stop(self, ctx: Context) -> None:
        await self.flush(ctx.lifecycle_redis)
