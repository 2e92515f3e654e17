"""Declarative rollouts: a service's desired spec (revision) is data in Redis; the cscale agents
replace replicas one by one and roll a faulty revision back on its health.

The keys (all in the namespace's cluster slot, all names built here):

- ``{<ns>}:cscale:spec`` — hash ``{revision, version, sets}``: the desired revision, its label
  and its config overrides (a JSON list of ``field=value``, given to each instance as ``--set``)
- ``{<ns>}:cscale:revision`` — INCR counter: every deploy takes a number never used before
- ``{<ns>}:cscale:revisions`` — hash revision → JSON ``{version, sets, t}`` (the history)
- ``{<ns>}:cscale:good`` — list of the revisions that completed a rollout, newest first
- ``{<ns>}:cscale:rollout`` — hash ``{revision, state, from, msg, t}``: the last rollout's state
  (``rolling``, ``done``, ``rolled back``)

Revision 0 is the scale file as it is (no overrides, no label): it is what runs before any
deploy, and the last good revision until a rollout completes. An instance registers the
revision it runs (``serviceRevision``, in its lifecycle hash as ``revision``).

`plan` is the rollout rule, a plain function the agent calls under the service's lease.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from redline.connection import AsyncClient, text
from redline.keys import derived
from redline.scaling.health import Health, HealthPolicy
from redline.scaling.registry import Instance
from redline.scripting import scripts

__all__ = [
    "Revision",
    "RolloutPolicy",
    "Step",
    "View",
    "deploy",
    "desired_revision",
    "good_revisions",
    "judge",
    "mark_good",
    "merge_sets",
    "note_failure",
    "plan",
    "read_revision",
    "revert",
    "revision_of",
    "rollback",
    "rollout_state",
    "set_state",
]

GOOD_KEPT = 20


def spec_key(ns: str) -> str:
    return derived(ns, "cscale", "spec")


def counter_key(ns: str) -> str:
    return derived(ns, "cscale", "revision")


def history_key(ns: str) -> str:
    return derived(ns, "cscale", "revisions")


def good_key(ns: str) -> str:
    return derived(ns, "cscale", "good")


def state_key(ns: str) -> str:
    return derived(ns, "cscale", "rollout")


class RolloutPolicy(BaseModel):
    """How a new revision replaces the old one (``rollout = {bake = 30}`` in a scale file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    bake: float = Field(30, ge=0, description="seconds a new replica must stay healthy")
    surge: int = Field(1, ge=1, description="replicas started beyond the desired count")
    max_failures: int = Field(
        3, alias="maxFailures", ge=1, description="new replicas that may die before a rollback"
    )


@dataclass(frozen=True)
class Revision:
    """One revision of a service's spec: its number, label and config overrides."""

    number: int
    version: str = ""
    sets: tuple[str, ...] = ()

    def describe(self) -> str:
        label = f" ({self.version})" if self.version else ""
        return f"revision {self.number}{label}"


def _sets(raw: str | None) -> tuple[str, ...]:
    try:
        value = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        value = []
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


async def desired_revision(client: AsyncClient, ns: str) -> Revision:
    """The desired spec of `ns` (revision 0 when nobody deployed)."""
    data = {text(k): text(v) for k, v in (await client.hgetall(spec_key(ns))).items()}
    number = data.get("revision", "0")
    return Revision(
        int(number) if number.isdigit() else 0, data.get("version", ""), _sets(data.get("sets"))
    )


async def read_revision(client: AsyncClient, ns: str, number: int) -> Revision | None:
    """Revision `number` of `ns` from the history (None when unknown)."""
    if number == 0:
        return Revision(0)
    raw = await client.hget(history_key(ns), str(number))
    if raw is None:
        return None
    record = json.loads(raw)
    return Revision(number, record.get("version", ""), _sets(json.dumps(record.get("sets", []))))


async def good_revisions(client: AsyncClient, ns: str) -> list[int]:
    """The revisions that completed a rollout, newest first (``[0]`` when none has)."""
    found = [int(v) for v in await client.lrange(good_key(ns), 0, -1)]
    return found or [0]


async def mark_good(client: AsyncClient, ns: str, number: int) -> bool:
    """Record that `number` completed its rollout; False when it already was the last good."""
    if (await good_revisions(client, ns))[0] == number:
        return False
    pipe = client.pipeline(transaction=True)
    pipe.lpush(good_key(ns), number)
    pipe.ltrim(good_key(ns), 0, GOOD_KEPT - 1)
    await pipe.execute()
    return True


def merge_sets(base: Sequence[str], changes: Sequence[str]) -> tuple[str, ...]:
    """`base` overrides with `changes` applied: a field set again takes its new value."""
    merged = {item.partition("=")[0].strip(): item for item in base}
    for item in changes:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected field=value")
        merged[key.strip()] = item
    return tuple(merged.values())


async def deploy(
    client: AsyncClient, ns: str, sets: Sequence[str], version: str | None, base: Revision
) -> int:
    """Write a new revision: `base`'s overrides with `sets` applied, labelled `version` (or
    `base`'s label). Returns its number, or -1 when the desired revision is no longer `base`."""
    merged = list(merge_sets(base.sets, sets))
    label = base.version if version is None else version
    record = json.dumps({"version": label, "sets": merged, "t": time.time()})
    keys = [counter_key(ns), history_key(ns), spec_key(ns)]
    args = [str(base.number), record, label, json.dumps(merged)]
    return int(await scripts.run(client, "rollout_deploy", keys, args))


async def _set_spec(client: AsyncClient, ns: str, expected: int, to: Revision) -> bool:
    args: list[str | int] = [str(expected), to.number, to.version, json.dumps(list(to.sets))]
    return bool(await scripts.run(client, "rollout_set", [spec_key(ns)], args))


async def rollback(
    client: AsyncClient, ns: str, to: int | None = None
) -> tuple[Revision, Revision]:
    """Make revision `to` (default: the last good one, or the good one before it when the
    desired revision is the last good) desired again. Returns (before, after); raises
    ValueError when there is nothing to go back to."""
    before = await desired_revision(client, ns)
    if to is None:
        earlier = [n for n in await good_revisions(client, ns) if n != before.number]
        if not earlier:
            raise ValueError(f"{ns}: no earlier good revision than {before.number}")
        to = earlier[0]
    after = await read_revision(client, ns, to)
    if after is None:
        raise ValueError(f"{ns}: no revision {to} in the history ({history_key(ns)})")
    if not await _set_spec(client, ns, before.number, after):
        raise ValueError(f"{ns}: the desired revision changed meanwhile; try again")
    return before, after


async def set_state(client: AsyncClient, ns: str, revision: int, state: str, **extra: str) -> None:
    """Record the state of the rollout of `revision` (what `redline status` shows)."""
    fields: dict[Any, str | float] = {"revision": revision, "state": state, "t": time.time()}
    fields |= extra
    pipe = client.pipeline(transaction=True)
    pipe.delete(state_key(ns))
    pipe.hset(state_key(ns), mapping=fields)
    await pipe.execute()


async def rollout_state(client: AsyncClient, ns: str) -> dict[str, str]:
    """The last rollout's state (empty when there was none)."""
    return {text(k): text(v) for k, v in (await client.hgetall(state_key(ns))).items()}


async def note_failure(client: AsyncClient, ns: str, revision: int) -> int:
    """Count an instance of `revision` that died (or exited before registering) while its
    rollout is under way; returns the count so far (0 when no rollout of it is under way)."""
    state = await rollout_state(client, ns)
    if state.get("revision") != str(revision) or state.get("state") != "rolling":
        return 0
    return int(await client.hincrby(state_key(ns), "failures", 1))


async def revert(client: AsyncClient, ns: str, failed: Revision, reason: str) -> Revision | None:
    """Automatic rollback: the desired spec returns to the last good revision, unless someone
    changed it meanwhile (then None)."""
    good = await good_revisions(client, ns)
    back = await read_revision(client, ns, next(n for n in (*good, 0) if n != failed.number))
    if back is None or not await _set_spec(client, ns, failed.number, back):
        return None
    msg = f"rolled back to {back.describe()}: {reason}"
    await set_state(client, ns, failed.number, "rolled back", to=str(back.number), msg=msg)
    return back


def revision_of(inst: Instance) -> int:
    """The revision an instance registered (0: none)."""
    value = inst.fields.get("revision", "0")
    return int(value) if value.isdigit() else 0


@dataclass(frozen=True)
class Totals:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0

    @classmethod
    def of(cls, group: Sequence[Instance]) -> Totals:
        def total(name: str) -> int:
            return sum(int(i.fields.get(name, "0") or 0) for i in group)

        return cls(total("calls"), total("errors"), total("timeouts"))


def judge(new: Sequence[Instance], old: Sequence[Instance], policy: HealthPolicy) -> Health:
    """The new revision is bad when, over at least ``minCount`` calls, its share of errors (or
    of timeouts) passes the old revision's share by more than ``threshold``."""
    now, before = Totals.of(new), Totals.of(old)
    if now.calls < policy.min_count:
        return Health(True)
    for what in ("errors", "timeouts"):
        bad, old_bad = getattr(now, what), getattr(before, what)
        share, old_share = bad / now.calls, old_bad / before.calls if before.calls else 0.0
        if share - old_share > policy.threshold:
            figures = f"{what} {bad}/{now.calls} = {share:.0%}"
            baseline = f"old revision {old_bad}/{before.calls} = {old_share:.0%}"
            return Health(False, f"{figures}, {baseline}: worse by > {policy.threshold:.0%}")
    return Health(True)


@dataclass(frozen=True)
class View:
    """What the agent saw of one service, under its lease."""

    live: Sequence[Instance]
    pending: int
    target: int  # desired + standby
    revision: int  # the desired one
    proven: bool  # the desired revision completed a rollout before: no bake, no judging
    now: float
    policy: RolloutPolicy
    health: HealthPolicy


@dataclass(frozen=True)
class Step:
    """What to do now: start this many of the desired revision, stop these, or roll back."""

    start: int = 0
    stop: list[Instance] = field(default_factory=list)
    verdict: Health | None = None  # set and not ok: roll back
    why: str = ""


def plan(view: View) -> Step:
    """One step of a rollout (see docs/scaling.md): while a new replica bakes, only replace
    what died; once every new replica has baked, stop one old replica beyond the target and
    start the next new one, never going below the target nor above target + surge."""
    current = [i for i in view.live if revision_of(i) == view.revision]
    stale = [i for i in view.live if revision_of(i) != view.revision]
    why = f"revision {view.revision}: new={len(current)} old={len(stale)} starting={view.pending}"
    if not view.proven:
        verdict = judge(current, stale, view.health)
        if not verdict.ok:
            return Step(verdict=verdict, why=why)
    bake = 0.0 if view.proven else view.policy.bake
    baking = [i for i in current if view.now - i.started < bake]
    have = len(view.live) + view.pending
    if view.pending or baking:  # wait; only replace what died meanwhile
        return Step(start=max(0, view.target - have), why=f"{why} baking={len(baking)}")
    count = min(len(stale), max(0, len(view.live) - view.target))
    stop = sorted(stale, key=lambda i: (i.role == "active", i.started))[:count]
    left = len(view.live) - count
    surge = view.policy.surge if len(stale) > count else 0
    return Step(start=max(0, view.target + surge - left), stop=stop, why=why)
