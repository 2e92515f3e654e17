"""`redline up`: a whole topology from one file — each replica of each service its own process.

A topology file (TOML or JSON)::

    redis = "redis://127.0.0.1:6379/0"   # optional: without it, the default or an embedded one
    port = 8080                          # the HTTP port (given to every himporter)
    seed = "seed.redis"                  # optional: Redis commands run once before the start

    [defaults]                           # fields merged into every service's config
    serviceNamespace = "website"         # a prefix here: service NAME gets "website:NAME"

    [services.front]
    kind = "himporter"                   # the `redline` subcommand; default: the table's name
    replicas = 1                         # processes to keep running; default 1
    out = "website:http"                 # ... the rest is that service's config

    [services.files]
    kind = "hassets"
    in = "website:assets"
    autoscale = { min = 1, max = 4, perReplica = 8 }   # replicas from the backlog of `in`

Relative paths in configs are relative to the topology file's directory (children run there).
A replica that exits unexpectedly is restarted with backoff; `stop` ends them all with SIGTERM,
then SIGKILL after a grace period. A service with ``autoscale`` is resized by
`redline.scaling.upscale` with the policy of `redline.scaling.autoscale` (the cscale
agent's); a replica it retires gets SIGTERM (it finishes what it holds) and no restart.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from redline.errors import ConfigError
from redline.keys import derived
from redline.scaling.autoscale import AutoscalePolicy
from redline.scaling.procs import Child, Children, Replicas, Restarts

__all__ = [
    "Group",
    "Scaler",
    "ServicePlan",
    "Supervisor",
    "Topology",
    "groups_for",
    "load_topology",
    "seed_commands",
]

log = logging.getLogger(__name__)

# The kinds whose instances keep their keys beside their input queue (their `assemble` call
# passes `queue=`), with the input's default where the service has one.
QUEUE_KEYED = {"mpush": "", "lpush": "", "mbalance": "", "vpush": "", "rquery": "rquery:in"}

RESET_AFTER = 30.0  # seconds a replica must run for its restart backoff to start over


@dataclass(frozen=True)
class ServicePlan:
    """One service of a topology: which subcommand, how many replicas, with what config."""

    name: str
    kind: str
    replicas: int
    config: dict[str, Any]
    autoscale: AutoscalePolicy | None = None

    @property
    def namespace(self) -> str:
        """The lifecycle namespace of its instances, as the service itself derives it
        (`runtime.assembly.namespace_of`): ``serviceNamespace``; for a kind that keeps its
        per-instance keys beside its input queue, ``{<in>}:service``; else ``redline:<kind>``."""
        if self.config.get("serviceNamespace"):
            return str(self.config["serviceNamespace"])
        if self.kind in QUEUE_KEYED:
            return derived(str(self.config.get("in") or QUEUE_KEYED[self.kind]), "service")
        return f"redline:{self.kind}"


@dataclass(frozen=True)
class Topology:
    path: Path
    redis: str | None
    port: int | None
    services: tuple[ServicePlan, ...]
    seed: Path | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix != ".json" else json.loads(text)
    except OSError as exc:
        raise ConfigError([f"{str(path)!r}: cannot read it ({exc.strerror})"]) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"{str(path)!r}: not valid TOML/JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{str(path)!r}: expected a table of fields at top level"])
    return data


def _plan(name: str, raw: Any, defaults: Mapping[str, Any], port: int | None) -> ServicePlan:
    if not isinstance(raw, dict):
        raise ConfigError([f"services.{name}: expected a table of fields"])
    config = {**defaults, **raw}
    if "serviceNamespace" in defaults and "serviceNamespace" not in raw:
        config["serviceNamespace"] = f"{defaults['serviceNamespace']}:{name}"
    kind = str(config.pop("kind", name))
    policy = _policy(name, config.pop("autoscale", None), config.get("in"))
    replicas = config.pop("replicas", policy.min if policy else 1)
    if not isinstance(replicas, int) or replicas < 0:
        raise ConfigError([f"services.{name}.replicas: {replicas!r} — expected a count ≥ 0"])
    if policy is not None:
        replicas = max(policy.min, min(policy.max, replicas))
    if kind == "himporter" and port is not None:
        config.setdefault("port", port)
    return ServicePlan(name, kind, replicas, config, policy)


def _policy(name: str, raw: Any, queue: Any) -> AutoscalePolicy | None:
    """The service's autoscaling policy; its queue defaults to the service's ``in``."""
    if raw is None:
        return None
    where = f"services.{name}.autoscale"
    if not isinstance(raw, dict):
        raise ConfigError([f"{where}: expected a table such as {{ min = 1, max = 4 }}"])
    try:
        return AutoscalePolicy.model_validate({"queue": queue, **raw} if queue else raw)
    except ValidationError as exc:
        raise ConfigError([_problem(where, error) for error in exc.errors()]) from None


def _problem(where: str, error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    if field == "queue":
        return f"{where}.queue: missing — name the queue (the service has no `in`)"
    return f"{where}{'.' + field if field else ''}: {error['msg']}"


def load_topology(
    path: Path,
    validate: Callable[[ServicePlan], list[str]] | None = None,
    port: int | None = None,
) -> Topology:
    """Read a topology file; `validate` returns problems for a plan (its config, checked early).

    `port`, when given, replaces the file's HTTP port.
    """
    data = _read(path)
    if port is not None:
        data["port"] = port
    known = {"redis", "port", "seed", "defaults", "services"}
    unknown = sorted(set(data) - known)
    problems = [f"{key}: unknown field (known: {', '.join(sorted(known))})" for key in unknown]
    services = data.get("services") or {}
    if not isinstance(services, dict) or not services:
        problems.append("services: missing — add at least one [services.NAME] table")
        services = {}
    plans = []
    for name, raw in services.items():
        try:
            plans.append(_plan(name, raw, data.get("defaults") or {}, data.get("port")))
        except ConfigError as exc:
            problems += exc.problems
    for plan in plans:
        problems += [f"services.{plan.name}.{p}" for p in (validate(plan) if validate else [])]
    if problems:
        raise ConfigError(problems)
    seed = path.resolve().parent / data["seed"] if data.get("seed") else None
    if seed is not None and not seed.is_file():
        raise ConfigError([f"seed: {str(seed)!r} — no such file"])
    return Topology(path.resolve(), data.get("redis"), data.get("port"), tuple(plans), seed)


def seed_commands(path: Path) -> list[list[str]]:
    """The commands of a seed file: one per line, shell-like quoting, ``#`` comments."""
    return [words for line in path.read_text().splitlines() if (words := shlex.split(line, True))]


RESTARTS = Restarts(base=0.2, cap=10.0, steady=RESET_AFTER, jitter=0.5)


@dataclass
class Group:
    """The replicas of one service: `procs.Replicas` in slots ``NAME.N``. One that exits
    unexpectedly is restarted with backoff; `resize` starts new ones or retires the newest:
    SIGTERM, so that each finishes or hands back what it holds, and no restart; one still
    running `grace` seconds later is killed."""

    plan: ServicePlan
    replicas: Replicas

    def resize(self, count: int, grace: float) -> None:
        for child in self.replicas.resize(count, grace):
            log.info("up started replica=%s pid=%d", child.tag, child.pid)

    def check(self, dead: list[Child], now: float) -> list[int]:
        """Note this group's processes among `dead` and restart the replicas that are due;
        the pids of the replicas found exited (not of those retired)."""
        died = []
        for child, delay in self.replicas.exited(dead, now):
            code = child.process.returncode
            if delay is None:
                log.info("up retired replica=%s pid=%d code=%s", child.tag, child.pid, code)
                continue
            log.warning(
                "up replica=%s pid=%d exited code=%s; restart in %.1fs",
                child.tag,
                child.pid,
                code,
                delay,
            )
            died.append(child.pid)
        for child in self.replicas.start_due(now):
            log.info("up started replica=%s pid=%d", child.tag, child.pid)
        return died


class Scaler(Protocol):
    """What resizes a group (`redline.scaling.upscale.UpScaler`): called every supervisor round."""

    def tick(self, now: float) -> None: ...


@dataclass
class Supervisor:
    """Keeps every replica of every group running until stopped; `children` are the groups'
    processes (`groups_for`); `scalers` resize groups; `bury(plan, pid)` is told of each
    replica that died (to drop its registration at once)."""

    groups: list[Group]
    children: Children
    grace: float = 15.0
    interval: float = 0.2
    scalers: list[Scaler] = field(default_factory=list)
    bury: Callable[[ServicePlan, int], None] | None = None
    stopped: bool = field(default=False, init=False)

    def run(self, stopping: Callable[[], bool]) -> None:
        for group in self.groups:
            group.resize(group.plan.replicas, self.grace)
        try:
            while not stopping():
                self.round(time.monotonic())
                time.sleep(self.interval)
        finally:
            self.stop()

    def round(self, now: float) -> None:
        """Reap, restart and bury, then let the scalers decide."""
        dead = self.children.reap()
        for group in self.groups:
            for pid in group.check(dead, now):
                if self.bury is not None:
                    self.bury(group.plan, pid)
        for scaler in self.scalers:
            scaler.tick(now)

    def stop(self) -> None:
        """SIGTERM every replica, wait up to `grace` seconds, then SIGKILL what is left."""
        self.children.stop_all(self.grace)
        self.stopped = True


def groups_for(
    topology: Topology, url: str, config_dir: Path, children: Children | None = None
) -> list[Group]:
    """One `Group` per service, their processes all in `children`; each replica runs
    ``python -m redline KIND --config FILE --redis URL`` in the topology's directory."""
    children = children if children is not None else Children()
    out = []
    for plan in topology.services:
        file = config_dir / f"{plan.name}.json"
        file.write_text(json.dumps(plan.config))
        argv = [sys.executable, "-m", "redline", plan.kind, "--config", str(file), "--redis", url]
        replicas = Replicas(children, f"{plan.name}.", argv, RESTARTS, topology.directory)
        out.append(Group(plan, replicas))
    return out
