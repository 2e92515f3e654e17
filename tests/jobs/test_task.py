"""@task, the registry, and loading tasks for a worker."""

from __future__ import annotations

import pytest

from redline.errors import JobError, UnknownTaskError
from redline.jobs import Task, Tasks, load_tasks, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task(name="custom", queue="q2", retries=0, unique=True)
async def ping() -> str:
    return "pong"


def test_decorated_function_still_runs_directly() -> None:
    assert add(2, 3) == 5
    assert add.name == f"{__name__}.add" and not add.is_async
    assert ping.is_async and ping.queue == "q2"


def test_unique_key_from_arguments_is_stable() -> None:
    one = ping.unique_key((1, "a"), {"x": 1})
    assert one == ping.unique_key((1, "a"), {"x": 1}) != ping.unique_key((2, "a"), {"x": 1})
    assert ping.options(unique="k").unique_key((1,), {}) == "k"
    assert add.unique_key((1,), {}) is None


def test_bad_options_are_refused_with_the_value() -> None:
    with pytest.raises(JobError, match="retries=-1: must be >= 0"):
        task(retries=-1)(lambda: None)
    with pytest.raises(JobError, match="cron"):
        task(cron="every minute")(lambda: None)


def test_registry_refuses_two_tasks_with_one_name() -> None:
    tasks = Tasks([add])
    with pytest.raises(JobError, match="two tasks are named"):
        tasks.add(Task(lambda: 1, add.name))
    with pytest.raises(UnknownTaskError, match="no task named 'nope'"):
        tasks.get("nope")


def test_load_tasks_from_a_module_and_an_attribute() -> None:
    found = load_tasks(__name__)
    assert list(found) == sorted(["custom", f"{__name__}.add"])
    assert found.queues == ["jobs", "q2"] or found.queues == ["q2", "jobs"]
    assert list(load_tasks(f"{__name__}:ping")) == ["custom"]
    with pytest.raises(JobError, match="cannot import"):
        load_tasks("no_such_module_here")
