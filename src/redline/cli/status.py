"""`redline status [--watch]` (one screen: services, replicas, queues, events) and
`redline services` (every live instance)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from redline.cli.common import redis_option, server_for
from redline.connection import AsyncClient, connect, text
from redline.jobs.document import job_keys
from redline.jobs.priority import levels_key, priority_key
from redline.jobs.usage import LimitUse, limit_use
from redline.jobs.worker import QUEUES_KEY
from redline.queue.model import QueueKeys
from redline.runtime.desired import all_desired
from redline.runtime.metrics import read_metrics, recent_errors
from redline.scaling.cscale import AGENTS_KEY, read_specs, recent_events
from redline.scaling.health import Health, HealthPolicy, assess, assess_instance
from redline.scaling.registry import Instance, all_instances, instances, services
from redline.scaling.rollout import Revision, desired_revision, revision_of, rollout_state

__all__ = ["services_command", "status"]


@dataclass
class Snapshot:
    """Everything one screen shows, read at `taken`."""

    taken: float
    live: dict[str, list[Instance]]
    desired: dict[str, int]
    specs: dict[str, dict[str, Any]]
    health: dict[str, Health]
    queues: dict[str, tuple[int, int, int]]
    agents: list[tuple[str, float]]
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)  # job queues paused (`redline queue pause`)
    revisions: dict[str, Revision] = field(default_factory=dict)
    rollouts: dict[str, dict[str, str]] = field(default_factory=dict)
    limits: list[LimitUse] = field(default_factory=list)  # of the queues job workers serve


async def _size(client: AsyncClient, key: str) -> int:
    kind = text(await client.type(key))
    sizes = {"list": client.llen, "zset": client.zcard, "hash": client.hlen, "set": client.scard}
    return int(await sizes[kind](key)) if kind in sizes else 0


async def _queue(client: AsyncClient, name: str) -> tuple[int, int, int]:
    """Waiting, in flight and dead-lettered messages of queue `name`."""
    keys = QueueKeys.of(name)
    waiting = await client.llen(name)
    # The inflight zset has a member per batch and per lone lease (docs/queue.md, "Keys").
    extra = int(await client.hget(keys.batches, "extra") or 0)
    return waiting, await _size(client, keys.inflight) + extra, await _size(client, keys.dead)


def _queue_names(specs: dict[str, dict[str, Any]], extra: tuple[str, ...]) -> list[str]:
    names = {spec["autoscale"]["queue"] for spec in specs.values() if spec.get("autoscale")}
    return sorted(names | set(extra))


async def with_priorities(client: AsyncClient, names: list[str]) -> list[str]:
    """`names`, each followed by the lists of the job priorities it has in use (1-9, highest
    first): a row each, with their own in-flight and dead counts."""
    shown = []
    for name in names:
        levels = await client.smembers(levels_key(name))
        used = sorted((int(m) for m in levels if m.isdigit()), reverse=True)
        shown += [name, *(priority_key(name, p) for p in used)]
    return shown


async def snapshot(client: AsyncClient, queues: tuple[str, ...] = ()) -> Snapshot:
    """Read everything `redline status` shows."""
    desired, specs = await all_desired(client), await read_specs(client)
    live = await all_instances(client)
    for ns in (*desired, *specs):
        if ns not in live:
            live[ns] = await instances(client, ns)
    health = {ns: await _health(client, ns, live[ns], specs.get(ns, {})) for ns in live}
    names = await with_priorities(client, _queue_names(specs, queues))
    counts = {q: await _queue(client, q) for q in names}
    scored = await client.zrange(AGENTS_KEY, 0, -1, withscores=True)
    agents = [(text(pair[0]), float(pair[1])) for pair in scored]
    events = await recent_events(client, 8)
    errors = [{"ns": ns, **e} for ns in live for e in await recent_errors(client, ns, 8)]
    errors = sorted(errors, key=lambda e: -float(e.get("t", 0)))[:8]
    revisions = {ns: await desired_revision(client, ns) for ns in live}
    rollouts = {ns: state for ns in live if (state := await rollout_state(client, ns))}
    return Snapshot(
        time.time(),
        dict(sorted(live.items())),
        *(desired, specs, health, counts, agents, events, errors),
        await _paused(client, counts),
        revisions,
        rollouts,
        await _limits(client),
    )


LIMITS_SHOWN = 10  # busiest limits on the status screen (`redline jobs limits` lists all)


async def _limits(client: AsyncClient) -> list[LimitUse]:
    """The busiest rate limits and concurrency caps of the queues job workers serve."""
    served = sorted(text(n) for n in await client.smembers(QUEUES_KEY))
    found = [use for name in served for use in await limit_use(client, name)]
    return sorted(found, key=lambda u: -u.used / max(u.limit, 1))[:LIMITS_SHOWN]


async def _paused(client: AsyncClient, shown: dict[str, Any]) -> list[str]:
    """The paused ones of the queues shown and of those job workers serve."""
    served = {text(n) for n in await client.smembers(QUEUES_KEY)}
    names = sorted(served | set(shown))
    return [n for n in names if await client.exists(job_keys(n).paused)]


async def _health(
    client: AsyncClient, ns: str, live: list[Instance], spec: dict[str, Any]
) -> Health:
    """The service's health, then (if it is fine) that of each instance since its start."""
    policy = HealthPolicy.model_validate(spec.get("health", {}))
    verdict = assess(await read_metrics(client, ns), policy)
    if not verdict.ok:
        return verdict
    sick = [(inst.id, assess_instance(inst.fields, policy)) for inst in live]
    reasons = [f"instance {ident}: {health.reason}" for ident, health in sick if not health.ok]
    return Health(not reasons, "; ".join(reasons))


def _services_table(snap: Snapshot) -> Table:
    table = Table(title="services", title_justify="left")
    deployed = _deployed(snap)  # the revision column only once someone deploys
    columns = ("namespace", "service", "desired", "live", "active", "standby")
    for column in (*columns, *(["revision"] if deployed else []), "health"):
        table.add_column(column, no_wrap=column == "namespace")  # the name an operator greps
    for ns, live in snap.live.items():
        active = sum(1 for inst in live if inst.role == "active")
        standby_want = snap.specs.get(ns, {}).get("standby", 0)
        desired = snap.desired.get(ns)
        health = snap.health[ns]
        revision = _revision_cell(snap.revisions.get(ns, Revision(0)), live)
        table.add_row(
            ns,
            live[0].service if live else "",
            "-" if desired is None else str(desired),
            str(len(live)),
            str(active),
            f"{len(live) - active}/{standby_want}",
            *([revision] if deployed else []),
            "ok" if health.ok else f"[red]unhealthy[/red] {health.reason}",
        )
    return table


def _deployed(snap: Snapshot) -> bool:
    """Whether any service had a rollout, has a desired revision or an instance running one."""
    instances = (inst for live in snap.live.values() for inst in live)
    deployed = any(r.number for r in snap.revisions.values()) or any(map(revision_of, instances))
    return deployed or bool(snap.rollouts)


def _revision_cell(desired: Revision, live: list[Instance]) -> str:
    """The desired revision, then how many live instances run each (``2 (v2): r2=2 r1=1``)."""
    label = f" ({desired.version})" if desired.version else ""
    runs = Counter(revision_of(inst) for inst in live)
    spread = " ".join(f"r{n}={count}" for n, count in sorted(runs.items(), reverse=True))
    return f"{desired.number}{label}: {spread}" if spread else f"{desired.number}{label}"


def _rollouts_table(snap: Snapshot) -> Table:
    """The last rollout of each service: its revision, state and why."""
    table = Table(title="rollouts", title_justify="left")
    for column in ("time", "service", "revision", "state", "detail"):
        table.add_column(column)
    for ns, state in snap.rollouts.items():
        stamp = time.strftime("%H:%M:%S", time.localtime(float(state.get("t", 0))))
        style = "[red]{}[/red]" if state.get("state") == "rolled back" else "{}"
        detail = state.get("msg") or f"from revision {state.get('from', '?')}"
        table.add_row(
            stamp, ns, state.get("revision", ""), style.format(state.get("state", "")), detail
        )
    return table


def _queues_table(snap: Snapshot, before: Snapshot | None) -> Table:
    table = Table(title="queues", title_justify="left")
    for column in ("queue", "length", "in flight", "dead", "length/s", "dead/s"):
        table.add_column(column, justify="right" if column != "queue" else "left")
    for name, (waiting, inflight, dead) in snap.queues.items():
        rates = ["", ""]
        if before is not None and name in before.queues and snap.taken > before.taken:
            span = snap.taken - before.taken
            old = before.queues[name]
            rates = [f"{(waiting - old[0]) / span:+.1f}", f"{(dead - old[2]) / span:+.1f}"]
        shown = f"{name} [yellow](paused)[/yellow]" if name in snap.paused else name
        table.add_row(shown, str(waiting), str(inflight), str(dead), *rates)
    return table


def _limits_table(snap: Snapshot) -> Table:
    table = Table(title="job limits (all: redline jobs limits)", title_justify="left")
    for column in ("queue", "task", "key", "limit", "in use", "waiting"):
        table.add_column(column, justify="right" if column in ("in use", "waiting") else "left")
    for u in snap.limits:
        used = f"{u.used}/{u.limit}"
        table.add_row(
            u.queue,
            u.task,
            "-" if u.key is None else u.key,
            f"{u.kind} {u.per}",
            f"[red]{used}[/red]" if u.used >= u.limit else used,
            str(u.waiting) if u.kind == "concurrency" else "-",
        )
    return table


def _timeline(title: str, rows: list[dict[str, Any]], who: str, what: str) -> Table:
    """Recent events or errors: time, service, then the fields `who` and `what`."""
    table = Table(title=title, title_justify="left")
    for column in ("time", "service", who, what):
        table.add_column(column)
    for row in rows:
        stamp = time.strftime("%H:%M:%S", time.localtime(row.get("t", 0)))
        table.add_row(stamp, row.get("ns", ""), row.get(who, ""), row.get("msg", ""))
    return table


def render(snap: Snapshot, before: Snapshot | None = None) -> Group:
    """The status screen as rich renderables."""
    agents = ", ".join(f"{host} ({snap.taken - seen:.0f}s ago)" for host, seen in snap.agents)
    services = _services_table(snap) if snap.live else "services: none registered or desired"
    parts: list[Any] = [services, f"cscale agents: {agents or 'none'}"]
    if snap.rollouts:
        parts.append(_rollouts_table(snap))
    if snap.queues:
        parts.append(_queues_table(snap, before))
    if snap.limits:
        parts.append(_limits_table(snap))
    if snap.paused:
        parts.append(f"paused job queues: {', '.join(snap.paused)} (redline queue resume NAME)")
    events = snap.events and _timeline("recent events", snap.events, "agent", "event")
    parts.append(events or "recent events: none")
    if snap.errors:
        parts.append(_timeline("recent errors", snap.errors, "instance", "error"))
    return Group(*parts)


async def _watch(client: AsyncClient, queues: tuple[str, ...], every: float) -> None:
    before = None
    with Live(render(await snapshot(client, queues)), auto_refresh=False) as live:
        while True:
            snap = await snapshot(client, queues)
            live.update(render(snap, before), refresh=True)
            before = snap
            await asyncio.sleep(every)


@click.command()
@redis_option
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--every", default=2.0, show_default=True, help="Seconds between refreshes.")
@click.option("--queue", "queues", multiple=True, metavar="NAME", help="Also show this queue.")
def status(redis_url: str | None, watch: bool, every: float, queues: tuple[str, ...]) -> None:
    """One screen: services with desired vs live replicas, standbys and health; queues with
    length, in-flight and dead letters; the busiest job rate limits and concurrency caps
    (`redline jobs limits` lists them all); cscale agents; recent scaling events and errors.

    \b
    A service is unhealthy when its errors or timeouts pass a share of its calls (10 % over
    at least 10 calls; a cscale file sets `health = {threshold, minCount}`), as a whole or in
    any one instance since that instance started."""

    async def main(url: str) -> None:
        client = connect(url)
        try:
            if watch:
                await _watch(client, queues, every)
            else:
                Console().print(render(await snapshot(client, queues)))
        finally:
            await client.aclose()

    with server_for(redis_url) as url, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(url))


@click.command(name="services")
@redis_option
def services_command(redis_url: str | None) -> None:
    """List every registered service and its live instances (host, pid, started, renewed,
    version, the deploy revision once there is one, role, what it serves)."""

    async def main(url: str) -> None:
        client = connect(url)
        try:
            found = [inst for ns in await services(client) for inst in await instances(client, ns)]
            if not found:
                click.echo("no live instances: a service registers when it starts")
                return
            Console().print(_instances_table(found))
        finally:
            await client.aclose()

    with server_for(redis_url) as url:
        asyncio.run(main(url))


def _instances_table(found: list[Instance]) -> Table:
    """One row per instance; a `revision` column once some instance runs one."""
    deployed = any(map(revision_of, found))
    table = Table(title="live instances", title_justify="left")
    columns = ("namespace", "id", "service", "host", "pid", "started", "renewed", "version")
    for column in (*columns, *(["revision"] if deployed else []), "role", "serves"):
        table.add_column(column)
    for inst in found:
        row = _instance_row(inst)
        table.add_row(*row[:8], *([str(revision_of(inst))] if deployed else []), *row[8:])
    return table


def _instance_row(inst: Instance) -> list[str]:
    def clock(t: int) -> str:
        return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"

    return [
        inst.namespace,
        inst.id,
        inst.service,
        inst.host,
        str(inst.pid),
        clock(inst.started),
        clock(inst.renewed),
        inst.version,
        inst.role,
        inst.serves,
    ]
