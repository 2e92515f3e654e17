"""The one form every workflow compiles to: members (signatures) and what each depends on.

A chain, a group, a chord and a `workflow(...)` are all a `Graph`; the state in Redis, the
scripts and the worker know only this form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from redline.errors import WorkflowError
from redline.jobs.task import Signature

__all__ = [
    "MAX_MEMBERS",
    "ON_ERROR",
    "Graph",
    "Input",
    "Member",
    "Shape",
    "find_cycle",
    "outputs_of",
]

MAX_MEMBERS = 100_000  # members of one workflow
ON_ERROR = "on_error"  # the reserved member name of a workflow's error callback
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")


class Input(StrEnum):
    """What a member receives as its first argument from what it depends on."""

    NONE = "none"  # nothing: a first member, or an immutable signature (``task.si()``)
    ONE = "one"  # the result of its one dependency
    LIST = "list"  # the results of its dependencies, as a list in their order


class Shape(StrEnum):
    """What `result()` gives: the value of the one last member, a list of the last members'
    values (a group), or a dict name -> value (a `workflow(...)` with several last members)."""

    ONE = "one"
    LIST = "list"
    DICT = "dict"


@dataclass(frozen=True)
class Member:
    name: str
    signature: Signature
    deps: tuple[str, ...] = ()
    input: Input = Input.NONE


@dataclass(frozen=True)
class Graph:
    """Members in member order (the order `results()` lists them in); `outputs` are the
    members nothing depends on."""

    kind: str
    members: tuple[Member, ...]
    shape: Shape
    on_error: Signature | None = None
    result_ttl: int = 86_400

    def __post_init__(self) -> None:
        _check(self)

    @property
    def outputs(self) -> list[str]:
        return outputs_of(self.members)

    def dependants(self) -> dict[str, list[str]]:
        """member -> the members that depend on it, in member order."""
        found: dict[str, list[str]] = {m.name: [] for m in self.members}
        for m in self.members:
            for d in m.deps:
                found[d].append(m.name)
        return found


def outputs_of(members: Sequence[Member]) -> list[str]:
    """The members nothing depends on, in member order."""
    needed = {d for m in members for d in m.deps}
    return [m.name for m in members if m.name not in needed]


def _check(graph: Graph) -> None:
    if not graph.members:
        raise WorkflowError(f"{graph.kind}: no members: give it at least one signature")
    if len(graph.members) > MAX_MEMBERS:
        raise WorkflowError(
            f"{graph.kind}: {len(graph.members)} members, more than {MAX_MEMBERS}: "
            "split it into several workflows"
        )
    if graph.result_ttl <= 0:
        raise WorkflowError(f"result_ttl={graph.result_ttl!r}: must be > 0 seconds")
    names = {m.name for m in graph.members}
    if len(names) != len(graph.members):
        raise WorkflowError(f"{graph.kind}: two members share a name")
    for m in graph.members:
        _check_member(graph.kind, m, names)
    if graph.on_error is not None:
        _check_signature(graph.kind, ON_ERROR, graph.on_error)
    cycle = find_cycle({m.name: m.deps for m in graph.members})
    if cycle:
        raise WorkflowError(
            f"{graph.kind}: the dependencies form a cycle: {' -> '.join(cycle)} (each depends "
            "on the next): remove one of these dependencies"
        )


def _check_member(kind: str, m: Member, names: set[str]) -> None:
    if not _NAME.match(m.name) or m.name == ON_ERROR:
        raise WorkflowError(
            f"{kind}: member name {m.name!r}: use letters, digits, '_', '.', ':' or '-' "
            f"(at most 128), not {ON_ERROR!r}"
        )
    unknown = [d for d in m.deps if d not in names]
    if unknown:
        raise WorkflowError(
            f"{kind}: member {m.name!r} depends on {unknown}, which are not members "
            f"(members: {sorted(names)[:20]})"
        )
    _check_signature(kind, m.name, m.signature)


def _check_signature(kind: str, name: str, sig: Signature) -> None:
    if not isinstance(sig, Signature):
        raise WorkflowError(
            f"{kind}: member {name!r} is {sig!r:.80}: expected a signature, task.s(...) or "
            "task.si(...)"
        )
    t = sig.task
    if t.unique is not False or t.replace or t.debounce or t.expires:
        raise WorkflowError(
            f"{kind}: member {name!r} ({t.name}) is unique, replaces, debounces or expires: a "
            "workflow member runs exactly when its dependencies are done; give it a task "
            "without those options (task.options(unique=False, expires=None))"
        )


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle of `deps` (member -> what it depends on) as ``[a, b, …, a]``; [] if none."""
    done: set[str] = set()
    for start in deps:
        if start in done:
            continue
        path: list[str] = []
        on_path: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                on_path[node] = len(path)
                path.append(node)
            nexts = deps.get(node, ())
            if i < len(nexts):
                stack.append((node, i + 1))
                nxt = nexts[i]
                if nxt in on_path:
                    return [*path[on_path[nxt] :], nxt]
                if nxt not in done:
                    stack.append((nxt, 0))
                continue
            done.add(node)
            del on_path[node]
            path.pop()
    return []
