"""`python -m bench jobs`' feature rows (bench/_jobs_features.py) compare a worker with one of
issue 20's features on against plain no-ops: each row's worker must differ from plain's by
that feature alone, or the row measures something else too."""

from __future__ import annotations

import pytest

from bench._jobs_features import FEATURES, PLAIN, TASKS, worker_tasks
from redline.jobs.priority import priority_key
from redline.jobs.task import load_tasks
from redline.jobs.worker import Worker


def popped_keys(spec: str) -> list[str]:
    """The lists a `redline worker` of the tasks `spec` names pops, in the order it pops them."""
    worker = Worker(load_tasks(spec), concurrency=1)
    worker.executor.shutdown()
    return worker.levels.keys


@pytest.mark.parametrize("row", ["redline-rate", "redline-cap"])
def test_a_limited_rows_worker_pops_only_the_list_plains_pops(row: str) -> None:
    # A worker that also declared the priority row's task popped that priority's empty list
    # before this one: a round trip more per batch than plain's, charged to the limit.
    assert popped_keys(worker_tasks(row)) == popped_keys(worker_tasks(PLAIN)) == ["bench:jobs"]


@pytest.mark.parametrize("row", FEATURES)
def test_each_rows_worker_loads_its_rows_task_alone(row: str) -> None:
    assert list(load_tasks(worker_tasks(row)).values()) == [TASKS[row]]


def test_the_priority_rows_worker_pops_its_priority_first() -> None:
    assert popped_keys(worker_tasks("redline-priority"))[0] == priority_key("bench:jobs", 5)
