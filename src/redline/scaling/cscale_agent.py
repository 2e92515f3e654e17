"""The cscale agent: one per host, converging live instances to the desired counts.

Every round (``interval`` seconds) the agent buries its children that died (deletes their
lifecycle hash at once, so a replacement starts without waiting for the hash to expire), notes
which of its starts have registered, runs the autoscaling policy where it leads it, and then,
per service, under the service's lease:

1. lists the start claims still pending (any agent's, with unexpired deadlines), *then*
2. lists the live instances, and counts only the claims whose process is not among them (a
   claim names the host and pid of its process, so an instance is counted exactly once; a
   claim whose process is seen registered is dropped, by whichever agent sees it, so the
   claims of an agent that died do not hold back starts);
3. when short of ``desired + standby``, records claims (the script checks the lease is still
   held) and starts that many processes locally — at most its share when several agents live;
4. when more instances live than wanted, deletes the hashes of the newest (the lifecycle
   shutdown). Pending claims do not count here.

No agent starts without a claim and claims are only written under the lease, so two agents
acting at once never start more than the shortfall. A start that has not registered by its
deadline is killed, so a late registration never overshoots either.

The agent is a process like any other (`redline.runtime.assemble`, kind ``cscale``): a runner
`Service` whose step is one round, and a `Hook` that publishes the plan at start and stops this
host's instances at stop. So it registers in ``redline:cscale`` (``serviceNamespace``) beside
the services it runs, its errors are kept there, and deleting its hash stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass

from redline.connection import AsyncClient
from redline.errors import TRANSIENT
from redline.queue import ReliableQueue
from redline.runtime import Context
from redline.scaling.autoscale import Autoscaler, backlog
from redline.scaling.cscale import (
    AGENTS_KEY,
    DESIRED_KEY,
    SPECS_KEY,
    ScaleFile,
    ServiceSpec,
    active_key,
    autoscale_key,
    choose_victims,
    claim_name,
    get_desired,
    lock_key,
    record_event,
    set_desired,
    split_claims,
    starting_key,
)
from redline.scaling.procs import Child, Children
from redline.scaling.registry import Instance, instances, retire
from redline.scaling.rollout import (
    Revision,
    View,
    desired_revision,
    good_revisions,
    mark_good,
    note_failure,
    plan,
    revert,
    revision_of,
    rollout_state,
    set_state,
)
from redline.scripting import scripts

__all__ = ["Agent"]

log = logging.getLogger(__name__)

CLAIM_MARGIN = 10.0  # seconds a claim outlives the local start timeout (the kill lands first)


@dataclass(frozen=True)
class _Work:
    """One service's round under its lease: what to run and how many."""

    ns: str
    spec: ServiceSpec
    token: str
    revision: Revision  # the desired one
    target: int  # desired + standby

    @property
    def done(self) -> tuple[str, int]:
        return self.ns, self.revision.number


class Agent:
    """Runs `plan` on this host (see the module doc); a runner `Service` and `Hook`."""

    name = "cscale"

    def __init__(
        self, url: str, host: str, plan: ScaleFile, interval: float = 1.0, stop_grace: float = 30
    ) -> None:
        self.url, self.host, self.plan, self.stop_grace = url, host, plan, stop_grace
        self._client: AsyncClient | None = None  # the runner's, from `start`
        self.interval, self.lease_ms = interval, int(max(1.0, 5 * interval) * 1000)
        self.children = Children()
        self.autoscalers: dict[str, Autoscaler] = {}
        self.next_eval: dict[str, float] = {}
        self.child_revisions: dict[int, int] = {}  # pid → the revision it was started with
        self.machine = socket.gethostname()

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("cscale agent not started: run it with run_service")
        return self._client

    @property
    def serves(self) -> str:
        """What this agent runs, for its lifecycle hash."""
        return f"{self.host}: {','.join(self.plan.services)}"

    async def start(self, ctx: Context) -> None:
        self._client = ctx.redis
        log.info("cscale agent host=%s services=%s", self.host, ",".join(self.plan.services))
        await self._publish()

    async def step(self, ctx: Context) -> None:
        """One round, then a pause of `interval` (the runner retries a failed round)."""
        await self.round()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), self.interval)

    async def tick(self, ctx: Context) -> None:
        return None

    async def stop(self, ctx: Context) -> None:
        """Stop this host's instances cleanly (`shutdown`)."""
        if self._client is not None:
            await self.shutdown(self.stop_grace)

    async def _publish(self) -> None:
        for ns, spec in self.plan.services.items():
            await self.client.hset(SPECS_KEY, ns, spec.model_dump_json(by_alias=True))
            if spec.replicas is not None:
                await self.client.hsetnx(DESIRED_KEY, ns, spec.replicas)

    async def round(self) -> None:
        """One pass: bury, confirm, autoscale, reconcile every service."""
        await self.client.zadd(AGENTS_KEY, {self.host: time.time()})
        for child in self.children.reap():
            await self._bury(child)
        for ns, spec in self.plan.services.items():
            await self._confirm(ns, spec, await instances(self.client, ns))
            if spec.autoscale is not None:
                await self._autoscale(ns, spec)
            await self._reconcile(ns, spec)

    async def _bury(self, child: Child) -> None:
        """A child exited: drop its claim; if its hash is still there, it died — delete the
        hash now, so the shortfall shows at once (not when the hash expires)."""
        ns, code = child.tag, child.process.returncode
        if child.claim:
            await self.client.zrem(starting_key(ns), child.claim)
        found = [i for i in await instances(self.client, ns) if self._started(i, child)]
        for inst in found:
            await self._event(ns, f"{inst.key} pid {child.pid} died code={code}: replacing it")
            await retire(self.client, inst)
            await self.client.zrem(active_key(ns), inst.id)
        if not found and not child.instance_id:
            await self._event(ns, f"pid {child.pid} exited code={code} before registering")
        revision = self.child_revisions.pop(child.pid, 0)
        if code and revision:
            await self._failed(ns, revision, f"pid {child.pid} exited code={code}")

    async def _failed(self, ns: str, number: int, what: str) -> None:
        """A new revision's instance failed while it rolls out: past `maxFailures`, roll back."""
        failures = await note_failure(self.client, ns, number)
        if failures < self.plan.services[ns].rollout.max_failures:
            return
        reason = f"{failures} of its instances failed, the last: {what}"
        back = await revert(self.client, ns, Revision(number), reason)
        if back is not None:
            await self._event(ns, f"rollout of revision {number} rolled back: {reason}")

    def _started(self, inst: Instance, child: Child) -> bool:
        return inst.host == self.machine and inst.pid == child.pid

    async def _confirm(self, ns: str, spec: ServiceSpec, live: list[Instance]) -> None:
        mine = {inst.pid: inst for inst in live if inst.host == self.machine}  # see _started
        for child in self.children.of(ns):
            if child.instance_id:
                continue
            inst = mine.get(child.pid)
            if inst is not None:
                child.instance_id = inst.id
                await scripts.run(
                    self.client, "hash_set_if_exists", [inst.key], ["agent", self.host]
                )
                await self.client.zrem(starting_key(ns), child.claim)
                child.claim = ""
            elif time.monotonic() - child.started > spec.start_timeout:
                await self._event(ns, f"pid {child.pid} not registered in time: killing it")
                self.children.kill(child)

    async def _reconcile(self, ns: str, spec: ServiceSpec) -> None:
        token = uuid.uuid4().hex
        if not await self.client.set(lock_key(ns), token, nx=True, px=self.lease_ms):
            return
        try:
            claims = await scripts.run(self.client, "cscale_pending", [starting_key(ns)])
            live = await instances(self.client, ns)
            pending, registered = split_claims(claims, live)
            if registered:  # its agent may have died before dropping it
                await self.client.zrem(starting_key(ns), *registered)
            desired = await get_desired(self.client, ns) or 0
            standby = spec.standby if desired else 0  # scaled to 0: the service is off
            revision = await desired_revision(self.client, ns)
            work = _Work(ns, spec, token, revision, desired + standby)
            if any(revision_of(inst) != work.revision.number for inst in live):
                await self._roll(work, live, len(pending))
            else:
                await self._converge(work, live, len(pending), desired)
        finally:
            await scripts.run(self.client, "cscale_unlock", [lock_key(ns)], [token])

    async def _converge(
        self, work: _Work, live: list[Instance], pending: int, desired: int
    ) -> None:
        """Every live instance runs the desired revision: start or stop to reach the target."""
        have = len(live) + pending
        why = f"live={len(live)} starting={pending} target={desired}+{work.target - desired}"
        if have < work.target:
            await self._start(work, await self._share(work.target - have), why)
        elif len(live) > work.target:  # not `have`: a claim and its instance may both count
            await self._stop(work.ns, choose_victims(live, len(live) - work.target, desired), why)
        elif work.target and not pending and await mark_good(self.client, *work.done):
            msg = f"rollout of {work.revision.describe()} complete: {len(live)} replicas"
            await set_state(self.client, work.ns, work.revision.number, "done", msg=msg)
            await self._event(work.ns, msg)

    async def _roll(self, work: _Work, live: list[Instance], pending: int) -> None:
        """Some instances run another revision: one step of the rollout (`rollout.plan`)."""
        proven = work.revision.number in await good_revisions(self.client, work.ns)
        view = View(live, pending, work.target, work.revision.number, proven, time.time(),
                    work.spec.rollout, work.spec.health)  # fmt: skip
        step = plan(view)
        if step.verdict is not None:
            back = await revert(self.client, work.ns, work.revision, step.verdict.reason)
            if back is not None:
                what = f"rollout of {work.revision.describe()} rolled back to {back.describe()}"
                await self._event(work.ns, f"{what}: {step.verdict.reason}")
            return
        if not proven:
            await self._announce(work, live)
        if step.stop:
            await self._stop(work.ns, step.stop, f"rollout {step.why}")
        if step.start:
            await self._start(work, await self._share(step.start), f"rollout {step.why}")

    async def _announce(self, work: _Work, live: list[Instance]) -> None:
        """Record that the rollout of the desired revision has begun (once)."""
        number, state = work.revision.number, await rollout_state(self.client, work.ns)
        if state.get("revision") == str(number) and state.get("state") == "rolling":
            return
        old = sorted({revision_of(inst) for inst in live} - {number})
        was = ",".join(map(str, old))
        await set_state(self.client, work.ns, number, "rolling", **{"from": was})
        await self._event(work.ns, f"rollout of {work.revision.describe()} begins (from {was})")

    async def _share(self, short: int) -> int:
        """This agent's part of a shortfall: an equal share among the agents alive."""
        alive = await self.client.zcount(AGENTS_KEY, time.time() - 3 * self.interval, "+inf")
        return math.ceil(short / max(1, alive))

    async def _start(self, work: _Work, count: int, why: str) -> None:
        """Start `count` processes and claim them (a claim names its process, so any agent can
        tell it from the instance once registered). Starting before claiming is safe: nobody
        counts while we hold the lease, and a child needs far longer to register than the claim
        takes; if the lease was lost meanwhile, the children are killed before they register."""
        ns, spec, token = work.ns, work.spec, work.token
        argv = self.argv(ns, spec, work.revision)
        started = [self.children.start(ns, argv) for _ in range(count)]
        self.child_revisions |= {child.pid: work.revision.number for child in started}
        for child in started:
            child.claim = claim_name(self.host, self.machine, child.pid)
        ttl_ms = int((spec.start_timeout + CLAIM_MARGIN) * 1000)
        args: list[str | int] = [token, ttl_ms, *(child.claim for child in started)]
        keys = [lock_key(ns), starting_key(ns)]
        if await scripts.run(self.client, "cscale_claim", keys, args) < 0:
            for child in started:  # the lease expired under us: the next round decides again
                self.children.kill(child)
            return
        await self._event(ns, f"starting {count} on {self.host}: {why}")

    async def _stop(self, ns: str, victims: list[Instance], why: str) -> None:
        for inst in victims:
            await retire(self.client, inst)
            await self.client.zrem(active_key(ns), inst.id)
        await self._event(ns, f"stopping {','.join(i.key for i in victims)} (newest): {why}")

    def argv(self, ns: str, spec: ServiceSpec, revision: Revision | None = None) -> list[str]:
        """The command line of one instance of `spec` in namespace `ns`, running `revision`
        (its overrides come after the file's; revision 0 is the file as it is)."""
        base = spec.argv or [sys.executable, "-m", "redline", str(spec.service)]
        config = ["--config", str(spec.config)] if spec.config else []
        fixed = [f"serviceNamespace={ns}", f"serviceCapacity={spec.capacity}", *spec.sets]
        if revision is not None and revision.number:
            fixed += [*revision.sets, f"serviceRevision={revision.number}"]
        if spec.standby:  # the instance waits behind `redline.runtime.standby.StandbyGate`
            fixed.append("serviceStandby=true")
        return [*base, *config, "--redis", self.url, *(a for s in fixed for a in ("--set", s))]

    async def _autoscale(self, ns: str, spec: ServiceSpec) -> None:
        policy = spec.autoscale
        now = time.monotonic()
        if policy is None or now < self.next_eval.get(ns, 0.0):
            return
        self.next_eval[ns] = now + policy.interval
        if not await self._lead(autoscale_key(ns), int(3 * policy.interval * 1000)):
            self.autoscalers.pop(ns, None)  # another agent decides; start afresh if we take over
            return
        scaler = self.autoscalers.setdefault(ns, Autoscaler(policy))
        length = backlog(await ReliableQueue(self.client).info(policy.queue))
        current = await get_desired(self.client, ns) or 0
        decision = scaler.decide(now, length, current)
        if decision is not None:
            await set_desired(self.client, ns, decision.replicas)
            await self._event(ns, f"autoscale {current} -> {decision.replicas}: {decision.reason}")

    async def _lead(self, key: str, lease_ms: int) -> bool:
        if await self.client.set(key, self.host, nx=True, px=lease_ms):
            return True
        if await self.client.get(key) == self.host.encode():
            return bool(await self.client.pexpire(key, lease_ms))
        return False

    async def _event(self, ns: str, message: str) -> None:
        log.info("ns=%s %s", ns, message)
        await record_event(self.client, ns, message, agent=self.host)

    async def shutdown(self, grace: float) -> None:
        """Stop this host's instances the lifecycle way; kill what has not stopped in `grace`."""
        with contextlib.suppress(*TRANSIENT):
            await self.client.zrem(AGENTS_KEY, self.host)
            for child in list(self.children.running.values()):
                if child.instance_id:
                    await retire(self.client, Instance(child.tag, child.instance_id, "", 0, 0, 0))
                    await self.client.zrem(active_key(child.tag), child.instance_id)
                else:
                    self.children.kill(child, signal.SIGTERM)
                if child.claim:
                    await self.client.zrem(starting_key(child.tag), child.claim)
        await asyncio.to_thread(self.children.wait_all, grace)
