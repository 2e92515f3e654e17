"""The private parts of xdist and pytest that tests/scheduling.py leans on, for want of a
public way (xdist takes a scheduler's units from `_split_scope`; an item's fixtures and their
scopes are only in `item._fixtureinfo`): if a release changes them, these fail and say where,
instead of the suite quietly losing its longest-first order or its one-worker modules."""

from __future__ import annotations

import inspect

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests import scheduling


@pytest.fixture(scope="module")
def shared() -> str:
    return "started once for this module"


def test_xdist_still_asks_its_scheduler_for_each_tests_unit() -> None:
    assert "self._split_scope(nodeid)" in inspect.getsource(LoadScopeScheduling)
    assert scheduling.LongestFirst._split_scope is not LoadScopeScheduling._split_scope


def test_a_module_scoped_fixture_is_still_seen_on_the_item(
    request: pytest.FixtureRequest, shared: str
) -> None:
    assert scheduling._has_a_module_fixture(request.node)


def test_an_item_without_one_is_told_apart(request: pytest.FixtureRequest) -> None:
    assert hasattr(request.node, "_fixtureinfo")
    assert not scheduling._has_a_module_fixture(request.node)


def test_xdist_still_hands_out_the_first_queued_unit() -> None:
    """`LongestFirst` puts the unit it chose first in the queue for xdist to take."""
    assert "self.workqueue.popitem(last=False)" in inspect.getsource(
        LoadScopeScheduling._assign_work_unit
    )


def test_a_heavy_test_waits_while_another_is_in_hand() -> None:
    heavy, other_heavy = scheduling.HEAVY[0] + "[server]", scheduling.HEAVY[1]
    queued = [heavy, other_heavy, "tests/test_keys.py::test_a", "tests/test_keys.py::test_b"]
    assert scheduling.next_unit(queued, heavy_in_hand=False) == heavy
    assert scheduling.next_unit(queued, heavy_in_hand=True) == "tests/test_keys.py::test_a"
    # none light left: the heavy ones run together rather than not at all
    assert scheduling.next_unit([other_heavy], heavy_in_hand=True) == other_heavy


class _Item:
    """What `scheduling.order` reads of a collected test: its id and its markers."""

    def __init__(self, nodeid: str, *marks: str) -> None:
        self.nodeid, self.marks = nodeid, marks

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.marks else None


def test_a_test_marked_alone_must_be_slow_too() -> None:
    """`alone` picks tests out of the slow pass; one not marked `slow` would run twice."""
    fine = _Item("tests/test_keys.py::test_a", "slow", "alone")
    scheduling.order([fine])  # type: ignore[list-item]
    with pytest.raises(pytest.UsageError, match="mark it slow too"):
        scheduling.order([_Item("tests/test_keys.py::test_b", "alone")])  # type: ignore[list-item]
