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
