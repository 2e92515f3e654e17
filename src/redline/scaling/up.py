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

Relative paths in configs are relative to the topology file's directory (children run there).
A replica that exits unexpectedly is restarted with backoff; `stop` ends them all with SIGTERM,
then SIGKILL after a grace period.
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
from typing import Any

from redline.backoff import delay_for
from redline.errors import ConfigError
from redline.scaling.procs import Child, Children

__all__ = [
    "Replica",
    "ServicePlan",
    "Supervisor",
    "Topology",
    "load_topology",
    "replicas_for",
    "seed_commands",
]

log = logging.getLogger(__name__)

RESET_AFTER = 30.0  # seconds a replica must run for its restart backoff to start over


@dataclass(frozen=True)
class ServicePlan:
    """One service of a topology: which subcommand, how many replicas, with what config."""

    name: str
    kind: str
    replicas: int
    config: dict[str, Any]


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
    replicas = config.pop("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        raise ConfigError([f"services.{name}.replicas: {replicas!r} — expected a count ≥ 0"])
    if kind == "himporter" and port is not None:
        config.setdefault("port", port)
    return ServicePlan(name, kind, replicas, config)


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


@dataclass
class Replica:
    """One process of one service, restarted with backoff when it dies."""

    name: str
    argv: list[str]
    cwd: Path
    child: Child | None = None
    crashes: int = 0
    restart_at: float = 0.0

    def exited(self, now: float) -> None:
        """Its process exited: restart it after a backoff delay (reset once it had run long)."""
        assert self.child is not None
        ran = now - self.child.started
        self.crashes = 1 if ran > RESET_AFTER else self.crashes + 1
        delay = delay_for(self.crashes, 0.2, 10.0)
        log.warning(
            "up replica=%s pid=%d exited code=%s; restart in %.1fs",
            self.name,
            self.child.pid,
            self.child.process.returncode,
            delay,
        )
        self.child, self.restart_at = None, now + delay


@dataclass
class Supervisor:
    """Keeps every replica running until stopped (its processes: `redline.scaling.procs`)."""

    replicas: list[Replica]
    grace: float = 15.0
    interval: float = 0.2
    stopped: bool = field(default=False, init=False)
    children: Children = field(default_factory=Children, init=False)

    def run(self, stopping: Callable[[], bool]) -> None:
        try:
            while not stopping():
                self.check(time.monotonic())
                time.sleep(self.interval)
        finally:
            self.stop()

    def check(self, now: float) -> None:
        """Note the replicas that exited; start those due (all of them, the first time)."""
        by_pid = {r.child.pid: r for r in self.replicas if r.child is not None}
        for child in self.children.reap():
            by_pid[child.pid].exited(now)
        for replica in self.replicas:
            if replica.child is None and now >= replica.restart_at:
                self._start(replica)

    def _start(self, replica: Replica) -> None:
        # Own session: a terminal's Ctrl-C reaches only `up`, which stops the replicas in order
        # (before the embedded server); a replica still gets SIGTERM if `up` itself dies.
        replica.child = self.children.start(
            replica.name, replica.argv, cwd=replica.cwd, die_with_parent=True
        )
        log.info("up started replica=%s pid=%d", replica.name, replica.child.pid)

    def stop(self) -> None:
        """SIGTERM every replica, wait up to `grace` seconds, then SIGKILL what is left."""
        self.children.stop_all(self.grace)
        self.stopped = True


def replicas_for(topology: Topology, url: str, config_dir: Path) -> list[Replica]:
    """One `Replica` per process: ``python -m redline KIND --config FILE --redis URL``."""
    out = []
    for plan in topology.services:
        file = config_dir / f"{plan.name}.json"
        file.write_text(json.dumps(plan.config))
        argv = [sys.executable, "-m", "redline", plan.kind, "--config", str(file), "--redis", url]
        for index in range(plan.replicas):
            out.append(Replica(f"{plan.name}.{index}", argv, topology.directory))
    return out
