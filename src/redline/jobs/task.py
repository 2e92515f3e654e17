"""`@task`: a function (sync or async) that a worker runs for each job naming it.

    from redline.jobs import task

    @task(queue="mail", retries=5, backoff=2.0, timeout=30)
    async def send_mail(to: str, subject: str) -> None: ...

    @task(cron="*/5 * * * *")          # also enqueued every five minutes by the cron scheduler
    def rollup() -> int: ...

A task is still callable directly (``send_mail("a@b", "hi")`` runs it here and now). Workers find
tasks through `Tasks` (a registry) or by collecting the `Task` objects of a module, so there is
no hidden global registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from redline.backoff import delay_for
from redline.errors import JobError, UnknownTaskError, import_failure
from redline.jobs.document import encode_value
from redline.jobs.options import option_problems

__all__ = ["Signature", "Task", "Tasks", "load_tasks", "task"]

P = ParamSpec("P")
R = TypeVar("R")

UniqueBy = bool | Callable[..., str]


@dataclass(frozen=True)
class Task(Generic[P, R]):
    """A job kind: the function to run and how its jobs are queued, retried and timed out.

    - `retries`: failures retried (attempts = retries + 1), then the job is dead-lettered.
    - `backoff`, `backoff_cap`: retry delays grow ``backoff * 2**(n-1)`` seconds up to the cap,
      with jitter.
    - `timeout`: seconds a run may take (None: no limit). An async run is cancelled; a sync run
      cannot be interrupted, so its job is failed and the thread finishes in the background.
    - `max_deliveries`: deliveries after which a job that keeps killing its worker (never
      failing, never finishing) is dead-lettered.
    - `result_ttl`: keep the return value this many seconds for ``await job.result()``.
    - `unique`: True keys uniqueness on the arguments; a function of the arguments returns the
      key; while a job with the key is pending another enqueue is a no-op. `unique_ttl` bounds
      how long a key can stay held.
    - `cron`: a 5-field schedule on which the cron scheduler enqueues the task (no arguments).
    - `sidekiq_class`: the Sidekiq job ``class`` this task runs under ``redline worker --sidekiq``
      (default: the task's name); `sidekiq_retry_in`: ``(retry_count, exception) -> seconds``
      before a retry, instead of Sidekiq's formula (docs/sidekiq.md).
    - `priority`: 0 (default) to 9, higher first; FIFO within a priority.
    - `rate_limit`: ``"100/s"`` (also ``/m``, ``/h``): starts shared by all workers;
      `rate_key`: a function of the job's arguments giving a key with a limit of its own.
    - `concurrency`: at most N running at once across all workers; `concurrency_key`: a
      function of the arguments giving a key with a cap of its own.
    - `expires`: seconds after it is due (enqueued, or its enqueue_in/at time) by which a job
      must have started, else it is dropped as expired, never run.
    - `replace` (with `unique`): an enqueue replaces the pending job's arguments;
      `debounce`: seconds to wait, restarted by each enqueue with the key (the last one runs).
    These are in docs/jobs.md ("Priorities, limits, expiry, replace and bulk enqueue").
    """

    func: Callable[P, R] | None
    name: str
    queue: str = "jobs"
    retries: int = 3
    backoff: float = 1.0
    backoff_cap: float = 300.0
    timeout: float | None = None
    max_deliveries: int = 10
    result_ttl: int | None = None
    unique: UniqueBy = False
    unique_ttl: int = 86400
    cron: str | None = None
    sidekiq_class: str | None = None
    sidekiq_retry_in: Callable[[int, BaseException], float] | None = None
    priority: int = 0
    rate_limit: str | None = None
    rate_key: Callable[..., str] | None = None
    concurrency: int | None = None
    concurrency_key: Callable[..., str] | None = None
    expires: float | None = None
    replace: bool = False
    debounce: float | None = None
    _async: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_options(self)
        # Asked for every run: inspect's check costs a microsecond or two each time.
        object.__setattr__(self, "_async", inspect.iscoroutinefunction(self.func))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.func is None:
            raise JobError(f"task {self.name!r} is a reference (no function here): enqueue it")
        return self.func(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        return self._async

    def options(self, **changes: Any) -> Task[P, R]:
        """A copy with other options: ``send_mail.options(queue="bulk", unique="user:7")``.

        A string `unique` is a key for this enqueue only.
        """
        return dataclasses.replace(self, **changes)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature: this task with these arguments, not enqueued (for workflows: ``chain``,
        ``group``, ``chord``, ``workflow``). It receives the result of what it follows as its
        first argument."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: like `s`, but it receives no upstream result."""
        return Signature(self, args, kwargs, immutable=True)

    def unique_key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
        """The uniqueness key of a job with these arguments (None: not unique)."""
        if self.unique is False:
            return None
        if isinstance(self.unique, str):
            return self.unique
        if callable(self.unique):
            return str(self.unique(*args, **kwargs))
        digest = hashlib.sha1(encode_value([args, kwargs], "unique key").encode()).hexdigest()
        return f"{self.name}:{digest}"

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1 = the first retry)."""
        return delay_for(attempt, self.backoff, self.backoff_cap, jitter=0.25)

    @classmethod
    def ref(cls, name: str, **options: Any) -> Task[..., Any]:
        """A task known by name only: for producers that do not import the worker's code."""
        return Task(None, name, **options)


@dataclass(frozen=True)
class Signature:
    """A task with its arguments, not yet enqueued: a member of a workflow
    (`redline.jobs.workflow`). `immutable` ones (``task.si(...)``) receive no upstream result."""

    task: Task[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    immutable: bool = False

    def options(self, **changes: Any) -> Signature:
        """The same call with other task options: ``resize.s(img).options(queue="gpu")``."""
        return dataclasses.replace(self, task=self.task.options(**changes))

    def __repr__(self) -> str:
        mark = "si" if self.immutable else "s"
        return f"{self.task.name}.{mark}(*{list(self.args)!r}, **{dict(self.kwargs)!r})"


def _check_options(t: Task[Any, Any]) -> None:
    problems = [
        f"{name}={value!r}: must be {rule}"
        for name, value, ok, rule in (
            ("retries", t.retries, t.retries >= 0, ">= 0"),
            ("backoff", t.backoff, t.backoff >= 0, ">= 0"),
            ("timeout", t.timeout, t.timeout is None or t.timeout > 0, "> 0 or None"),
            ("max_deliveries", t.max_deliveries, t.max_deliveries >= 1, ">= 1"),
            ("result_ttl", t.result_ttl, t.result_ttl is None or t.result_ttl > 0, "> 0"),
            ("unique_ttl", t.unique_ttl, t.unique_ttl > 0, "> 0"),
        )
        if not ok
    ]
    if not t.name or not t.queue:
        problems.append("name and queue must not be empty")
    if t.sidekiq_class is not None and not t.sidekiq_class:
        problems.append("sidekiq_class must not be empty (leave it out for the task's name)")
    if t.cron is not None:
        from redline.jobs.cron import CronSchedule

        CronSchedule.parse(t.cron)  # raises with the field at fault
    problems += option_problems(t)
    if problems:
        raise JobError(f"task {t.name!r}: " + "; ".join(problems))


@overload
def task(func: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(*, name: str | None = None, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    func: Callable[P, R] | None = None, /, *, name: str | None = None, **options: Any
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task; `name` defaults to ``module.qualname``. Options: see `Task`."""

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(f, name or f"{f.__module__}.{f.__qualname__}", **options)

    return wrap(func) if func is not None else wrap


class Tasks:
    """A registry of tasks by name: what a worker can run."""

    def __init__(self, tasks: Iterable[Task[Any, Any]] = ()) -> None:
        self._by_name: dict[str, Task[Any, Any]] = {}
        for item in tasks:
            self.add(item)

    def add(self, item: Task[Any, Any]) -> Task[Any, Any]:
        known = self._by_name.get(item.name)
        if known is not None and known is not item:
            raise JobError(f"two tasks are named {item.name!r}: give one of them name=...")
        self._by_name[item.name] = item
        return item

    def task(self, func: Callable[P, R] | None = None, /, **options: Any) -> Any:
        """Like `task`, and registers the result here."""
        made = task(func, **options) if func is not None else None
        if made is not None:
            return self.add(made)
        return lambda f: self.add(task(f, **options))

    def get(self, name: str) -> Task[Any, Any]:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownTaskError(
                f"no task named {name!r} in this worker (it has: {', '.join(self) or 'none'})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_name))

    def __len__(self) -> int:
        return len(self._by_name)

    def values(self) -> list[Task[Any, Any]]:
        return [self._by_name[name] for name in self]

    @property
    def queues(self) -> list[str]:
        """The queues of these tasks, in first-seen order."""
        return list(dict.fromkeys(t.queue for t in self._by_name.values()))


def load_tasks(spec: str) -> Tasks:
    """``module`` (every Task in it) or ``module:attr`` (a Tasks, a Task, or a list of Tasks)."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's code: any error, said in one line
        failure = import_failure(module_name, exc)
        raise JobError(f"cannot import tasks module {module_name!r}: {failure}") from exc
    found: object = vars(module).values() if not attr else getattr(module, attr, None)
    if isinstance(found, Tasks):
        return found
    if isinstance(found, Task):
        return Tasks([found])
    items = list(found) if isinstance(found, Iterable) else []
    tasks = Tasks(t for t in items if isinstance(t, Task))
    if not tasks:
        raise JobError(
            f"{spec!r} names no tasks: expected a module with @task functions, or "
            "module:attr naming a Tasks registry, a Task or a list of Tasks"
        )
    return tasks
