"""What a user writes: `chain`, `group`, `chord` and `workflow`, each compiled to a `Graph`.

    await enqueue(client, chain(fetch.s(url), parse.s(), store.s()))
    h = await enqueue(client, group(resize.s(i) for i in images))
    await enqueue(client, chord(group(score.s(d) for d in docs), summarize.s()))
    wf = workflow(a=extract.s(), b=clean.s(), c=report.s(),
                  depends_on={"b": ["a"], "c": ["a", "b"]})

Members are named by position (``"0"``, ``"1"``, ``"2.callback"`` for a chord nested third in a
chain) or, in a `workflow`, by their keyword. Chains, groups and chords nest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redline.errors import WorkflowError
from redline.jobs.task import Signature
from redline.jobs.workflow.graph import Graph, Input, Member, Shape, outputs_of

if TYPE_CHECKING:
    from redline.connection import AsyncClient, SyncClient
    from redline.jobs.workflow.handle import SyncWorkflowHandle, WorkflowHandle

__all__ = ["Canvas", "Chain", "Chord", "Group", "Workflow", "chain", "chord", "group", "workflow"]

DAY = 86_400


@dataclass(frozen=True)
class Canvas:
    """A workflow not yet enqueued: ``await enqueue(client, canvas)`` starts it.

    `on_error`: a signature enqueued once when a member fails after its retries (it receives
    ``{"workflow": id, "member": name, "error": text}`` unless immutable); `result_ttl`:
    seconds the workflow's state and results are kept after it ends.
    """

    on_error: Signature | None = field(default=None, kw_only=True)
    result_ttl: int = field(default=DAY, kw_only=True)

    def graph(self) -> Graph:
        """This workflow in the one form the rest of redline knows."""
        members: list[Member] = []
        self._build("", (), Input.NONE, members)
        return Graph(
            self.kind, tuple(members), self._shape(members), self.on_error, self.result_ttl
        )

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()

    def _shape(self, members: Sequence[Member]) -> Shape:
        return Shape.ONE

    def _build(self, path: str, after: tuple[str, ...], given: Input, out: list[Member]) -> Ends:
        raise NotImplementedError

    async def enqueue_with(self, client: AsyncClient) -> WorkflowHandle:
        """Called by `redline.jobs.enqueue` (use that)."""
        from redline.jobs.workflow.enqueue import enqueue_graph

        return await enqueue_graph(client, self.graph())

    def enqueue_with_sync(self, client: SyncClient) -> SyncWorkflowHandle:
        """Called by `redline.jobs.enqueue_sync` (use that)."""
        from redline.jobs.workflow.enqueue import enqueue_graph_sync

        return enqueue_graph_sync(client, self.graph())


@dataclass(frozen=True)
class Ends:
    """The last members of a part, and whether they are a fan-out (a group's results)."""

    names: tuple[str, ...]
    fanned: bool = False

    @property
    def input(self) -> Input:
        return Input.LIST if self.fanned or len(self.names) != 1 else Input.ONE


def _child(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _build(
    item: Signature | Canvas, path: str, after: tuple[str, ...], given: Input, out: list[Member]
) -> Ends:
    if isinstance(item, Canvas):
        return item._build(path, after, given, out)
    if not isinstance(item, Signature):
        raise WorkflowError(
            f"workflow member {path!r} is {item!r:.80}: expected task.s(...), task.si(...), "
            "or a chain, group or chord"
        )
    received = Input.NONE if item.immutable or not after else given
    out.append(Member(path, item, after, received))
    return Ends((path,))


@dataclass(frozen=True)
class Chain(Canvas):
    """Members one after the other; each receives the result of the one before."""

    items: tuple[Signature | Canvas, ...] = ()

    def _build(self, path: str, after: tuple[str, ...], given: Input, out: list[Member]) -> Ends:
        ends = Ends(after)
        for i, item in enumerate(self.items):
            ends = _build(item, _child(path, str(i)), ends.names, given, out)
            given = ends.input
        return ends

    def _shape(self, members: Sequence[Member]) -> Shape:
        return Shape.ONE if len(outputs_of(members)) == 1 else Shape.LIST


@dataclass(frozen=True)
class Group(Canvas):
    """Members side by side; `results()` lists their results in member order."""

    items: tuple[Signature | Canvas, ...] = ()

    def _build(self, path: str, after: tuple[str, ...], given: Input, out: list[Member]) -> Ends:
        names: list[str] = []
        for i, item in enumerate(self.items):
            names += _build(item, _child(path, str(i)), after, given, out).names
        return Ends(tuple(names), fanned=True)

    def _shape(self, members: Sequence[Member]) -> Shape:
        return Shape.LIST


@dataclass(frozen=True)
class Chord(Canvas):
    """A group, then `callback` once every member is done, with their results as a list."""

    header: Group = field(default_factory=Group)
    callback: Signature | Canvas | None = None

    def _build(self, path: str, after: tuple[str, ...], given: Input, out: list[Member]) -> Ends:
        if self.callback is None:
            raise WorkflowError("chord: no callback: chord(group(...), callback.s())")
        ends = self.header._build(path, after, given, out)
        return _build(self.callback, _child(path, "callback"), ends.names, Input.LIST, out)


@dataclass(frozen=True)
class Workflow(Canvas):
    """Named members and what each depends on (a DAG)."""

    members: Mapping[str, Signature] = field(default_factory=dict)
    depends_on: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def _build(self, path: str, after: tuple[str, ...], given: Input, out: list[Member]) -> Ends:
        if path or after:
            raise WorkflowError("a workflow(...) cannot be nested: use it at the top")
        unknown = sorted(set(self.depends_on) - set(self.members))
        if unknown:
            raise WorkflowError(
                f"workflow: depends_on names {unknown}, which are not members "
                f"(members: {sorted(self.members)})"
            )
        for name, sig in self.members.items():
            deps = tuple(self.depends_on.get(name, ()))
            if isinstance(sig, Signature) and (sig.immutable or not deps):
                received = Input.NONE
            else:
                received = Input.ONE if len(deps) == 1 else Input.LIST
            out.append(Member(name, sig, deps, received))
        return Ends(())

    def _shape(self, members: Sequence[Member]) -> Shape:
        return Shape.ONE if len(outputs_of(members)) == 1 else Shape.DICT


def _items(kind: str, items: tuple[Any, ...]) -> tuple[Signature | Canvas, ...]:
    if len(items) == 1 and not isinstance(items[0], Signature | Canvas):
        if not isinstance(items[0], Iterable):
            raise WorkflowError(f"{kind}: {items[0]!r:.80} is not a signature or an iterable")
        items = tuple(items[0])
    return items


def chain(
    *items: Signature | Canvas | Iterable[Signature | Canvas],
    on_error: Signature | None = None,
    result_ttl: int = DAY,
) -> Chain:
    """Run `items` one after the other; each receives the result of the one before as its
    first argument (unless made with ``.si()``). `result()` is the last one's result."""
    return Chain(items=_items("chain", items), on_error=on_error, result_ttl=result_ttl)


def group(
    *items: Signature | Canvas | Iterable[Signature | Canvas],
    on_error: Signature | None = None,
    result_ttl: int = DAY,
) -> Group:
    """Run `items` in parallel (``group(a.s(), b.s())`` or ``group(x.s(i) for i in ...)``);
    `result()` and `results()` are their results in member order."""
    return Group(items=_items("group", items), on_error=on_error, result_ttl=result_ttl)


def chord(
    header: Group | Iterable[Signature | Canvas],
    callback: Signature | Canvas,
    *,
    on_error: Signature | None = None,
    result_ttl: int = DAY,
) -> Chord:
    """Run the group `header`, then `callback` once, with the list of their results."""
    made = header if isinstance(header, Group) else group(header)
    return Chord(header=made, callback=callback, on_error=on_error, result_ttl=result_ttl)


def workflow(
    *,
    depends_on: Mapping[str, Sequence[str]] | None = None,
    on_error: Signature | None = None,
    result_ttl: int = DAY,
    **members: Signature,
) -> Workflow:
    """A DAG of named members: ``workflow(a=x.s(), b=y.s(), depends_on={"b": ["a"]})``.

    A member with one dependency receives its result as first argument; with several, the
    list of their results in the order of `depends_on`. A cycle is refused, named.
    """
    deps = {k: list(v) for k, v in (depends_on or {}).items()}
    return Workflow(members=members, depends_on=deps, on_error=on_error, result_ttl=result_ttl)
