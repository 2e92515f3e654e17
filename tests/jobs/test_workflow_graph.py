"""Canvases compiled to the one graph form (no server): names, dependencies, what each
member receives, and the workflows refused with the reason."""

from __future__ import annotations

import pytest

from redline.errors import WorkflowError
from redline.jobs import Task, chain, chord, group, workflow
from redline.jobs.workflow import Input, Shape
from redline.jobs.workflow.graph import find_cycle

t = Task.ref("app.t", queue="q")


def shape_of(canvas: object) -> list[tuple[str, tuple[str, ...], str]]:
    return [(m.name, m.deps, m.input.value) for m in canvas.graph().members]  # type: ignore[attr-defined]


def test_a_chain_passes_each_result_to_the_next_unless_immutable() -> None:
    assert shape_of(chain(t.s(1), t.s(), t.si(3), t.s())) == [
        ("0", (), "none"),
        ("1", ("0",), "one"),
        ("2", ("1",), "none"),
        ("3", ("2",), "one"),
    ]


def test_a_chord_callback_receives_the_list_even_of_one_member() -> None:
    graph = chord([t.s(1)], t.s()).graph()
    assert [(m.name, m.deps, m.input) for m in graph.members] == [
        ("0", (), Input.NONE),
        ("callback", ("0",), Input.LIST),
    ]
    assert graph.outputs == ["callback"] and graph.shape is Shape.ONE


def test_nesting_flattens_to_named_members() -> None:
    nested = chain(t.s(), group(t.s(), t.s()), t.s(), chord(group(t.s(), t.s()), t.s()))
    assert shape_of(nested) == [
        ("0", (), "none"),
        ("1.0", ("0",), "one"),
        ("1.1", ("0",), "one"),
        ("2", ("1.0", "1.1"), "list"),
        ("3.0", ("2",), "one"),
        ("3.1", ("2",), "one"),
        ("3.callback", ("3.0", "3.1"), "list"),
    ]


def test_a_group_from_a_generator_and_its_shape() -> None:
    graph = group(t.s(i) for i in range(3)).graph()
    assert [m.signature.args for m in graph.members] == [(0,), (1,), (2,)]
    assert graph.shape is Shape.LIST and graph.outputs == ["0", "1", "2"]


def test_a_workflow_member_with_several_dependencies_receives_them_in_order() -> None:
    wf = workflow(a=t.s(), b=t.s(), c=t.s(), d=t.si(), depends_on={"c": ["b", "a"], "d": ["a"]})
    assert shape_of(wf) == [
        ("a", (), "none"),
        ("b", (), "none"),
        ("c", ("b", "a"), "list"),
        ("d", ("a",), "none"),
    ]
    assert wf.graph().shape is Shape.DICT  # two last members: c and d


@pytest.mark.parametrize(
    ("canvas", "reason"),
    [
        (lambda: workflow(a=t.s(), b=t.s(), depends_on={"a": ["b"], "b": ["a"]}), "a -> b -> a"),
        (lambda: workflow(a=t.s(), depends_on={"a": ["a"]}), "cycle: a -> a"),
        (lambda: workflow(a=t.s(), depends_on={"a": ["nope"]}), "depends on \\['nope'\\]"),
        (lambda: workflow(a=t.s(), depends_on={"zz": ["a"]}), "names \\['zz'\\]"),
        (lambda: group(), "no members"),
        (lambda: chain(t.s(), "oops"), "expected task.s"),
        (lambda: group(t.options(unique=True).s()), "unique, replaces, debounces or expires"),
        (lambda: group(t.s(), result_ttl=0), "result_ttl=0"),
        (lambda: workflow(**{"a b": t.s()}), "member name 'a b'"),
    ],
)
def test_bad_workflows_are_refused_with_the_reason(canvas: object, reason: str) -> None:
    with pytest.raises(WorkflowError, match=reason):
        canvas().graph()  # type: ignore[operator]


def test_find_cycle_names_the_members_in_order() -> None:
    deps = {"a": ["b"], "b": ["c"], "c": ["d", "a"], "d": []}
    assert find_cycle(deps) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


def test_signature_options_and_repr() -> None:
    sig = t.s(1, k=2).options(queue="gpu", priority=3)
    assert (sig.task.queue, sig.task.priority, sig.args, sig.kwargs) == ("gpu", 3, (1,), {"k": 2})
    assert repr(t.si(1)) == "app.t.si(*[1], **{})"
