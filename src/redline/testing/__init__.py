"""A pytest plugin for applications built on redline. Opt in with ``pytest -p redline.testing``,
or ``pytest_plugins = ["redline.testing"]`` in your top-level conftest.py.

Fixtures:

- ``redline_server`` (session): the URL of a server for the whole session — an embedded Valkey
  on a free port, started on first use and stopped at the end; or, when the environment
  variable ``REDLINE_TEST_URL`` names one, that server (whose numbered databases the tests then
  empty: give it a server of its own).
- ``redline_url``: an empty database of its own for each test, on that server.
- ``redline_jobs``: `Jobs` on that database: what was enqueued, and running it here.
- ``redline_client``: an asyncio client on that database (with pytest-asyncio installed).

Functions that need no fixture: `run_jobs` and `enqueued`.

::

    from redline.jobs import enqueue
    from app.tasks import send_mail

    async def test_signup_sends_mail(redline_client, redline_jobs):
        await enqueue(redline_client, send_mail, "a@example.com")
        redline_jobs.assert_enqueued(send_mail, "a@example.com")
        [run] = await redline_jobs.run("mail")
        assert run.ok
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import os
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from redline.connection import AsyncClient, SyncClient, connect, connect_sync
from redline.connection.embedded import EmbeddedServer
from redline.errors import JobError, JobSerializationError, UnknownTaskError
from redline.jobs.document import JobDocument, decode_value
from redline.jobs.task import Task, Tasks, load_tasks
from redline.jobs.worker import JobOutcome, Worker
from redline.queue import ReliableQueue, SyncReliableQueue

__all__ = ["JobRun", "Jobs", "enqueued", "run_jobs"]

_databases = itertools.count(1)


@dataclass(frozen=True)
class JobRun:
    """One run of one job by `run_jobs`: `ok`, or failed with `error` (`dead`: no retry left)."""

    id: str
    task: str
    queue: str
    attempt: int
    ok: bool
    dead: bool
    result: Any = None  # the return value, when the task keeps results (result_ttl)
    error: str = ""

    @classmethod
    def of(cls, outcome: JobOutcome) -> JobRun:
        doc, delivery = outcome.doc, outcome.delivery
        return cls(
            id=doc.id if doc else delivery.id,
            task=doc.task if doc else "",
            queue=delivery.key,
            attempt=delivery.deliveries,
            ok=outcome.ok,
            dead=outcome.dead,
            result=None if outcome.value is None else decode_value(outcome.value, "result"),
            error=outcome.error,
        )


class _TasksByName(Tasks):
    """The given tasks, and any other found by its name (``module.function``) when a job needs
    it; every one without backoff, so that retries are due at once."""

    def add(self, item: Task[Any, Any]) -> Task[Any, Any]:
        return super().add(item.options(backoff=0.0, backoff_cap=0.0))

    def get(self, name: str) -> Task[Any, Any]:
        try:
            return super().get(name)
        except UnknownTaskError:
            module = name.rpartition(".")[0]
            try:
                found = load_tasks(module).values() if module else []
            except JobError:
                found = []
            for item in found:
                if item.name not in self:
                    self.add(item)
            return super().get(name)

    def __contains__(self, name: object) -> bool:
        return name in list(self)


async def run_jobs(
    client: AsyncClient,
    queue: str | Sequence[str],
    tasks: Iterable[Task[Any, Any]] = (),
    *,
    limit: int = 1000,
) -> list[JobRun]:
    """Run the jobs waiting on `queue` (or queues) here, one at a time, until none is left:
    the worker's own code (results, records, unique locks, dead letters), with each failure
    retried at once (the tasks' backoff is skipped) until it succeeds or runs out of retries.
    Jobs that the jobs enqueue run too. Tasks are found by name unless given in `tasks`.
    Returns every run, in order; raises JobError past `limit` runs (a job that enqueues itself
    forever)."""
    queues = [queue] if isinstance(queue, str) else list(queue)
    registry = _TasksByName(tasks)
    for name in {doc.task for key in queues for doc in await _waiting(client, key)}:
        with contextlib.suppress(UnknownTaskError):  # the worker dead-letters its jobs
            registry.get(name)  # known before the first run: the queue's delivery limit
    worker = Worker(registry, queues, concurrency=1, cron=False)
    runs: list[JobRun] = []
    try:
        while (outcome := await worker.run_once(client)) is not None:
            runs.append(JobRun.of(outcome))
            if len(runs) >= limit:
                raise JobError(f"run_jobs: still jobs on {queues} after {limit} runs")
    finally:
        worker.executor.shutdown(wait=False)
    return runs


async def _waiting(client: AsyncClient, queue: str) -> list[JobDocument]:
    waiting = await ReliableQueue(client).inspect(queue, count=100_000)
    return [_decoded(message.payload, queue) for message in waiting]


def _decoded(payload: bytes, queue: str) -> JobDocument:
    try:
        return JobDocument.decode(payload, queue)
    except JobSerializationError:  # not a job: the worker dead-letters it with the reason
        return JobDocument(task="", queue=queue)


def enqueued(client: SyncClient, queue: str) -> list[JobDocument]:
    """The jobs waiting on `queue` (not running, retrying or dead), oldest first; scheduled
    jobs (``enqueue_in``/``enqueue_at``) are not on the queue until they are due."""
    waiting = SyncReliableQueue(client).inspect(queue, count=100_000)
    return [JobDocument.decode(message.payload, queue) for message in waiting]


class Jobs:
    """The jobs of one test's database (the ``redline_jobs`` fixture)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = connect_sync(url)

    def enqueued(self, queue: str = "jobs") -> list[JobDocument]:
        """The jobs waiting on `queue`, oldest first."""
        return enqueued(self.client, queue)

    def assert_enqueued(
        self, task: Task[..., Any] | str, /, *args: Any, **kwargs: Any
    ) -> JobDocument:
        """The one job of `task` waiting on its queue with these arguments (when given); an
        AssertionError listing what is there otherwise. A task given by name is looked for
        on the queue ``jobs``."""
        name, queue = (task, "jobs") if isinstance(task, str) else (task.name, task.queue)
        docs = self.enqueued(queue)
        found = [d for d in docs if d.task == name and _same(d, args, kwargs)]
        if len(found) != 1:
            there = "\n".join(f"  {d.task}{_call(d)}" for d in docs) or "  nothing"
            wanted = f"{name}{_call_of(list(args), kwargs)}" if args or kwargs else name
            raise AssertionError(
                f"expected one job {wanted} on {queue!r}, found {len(found)}; waiting:\n{there}"
            )
        return found[0]

    async def run(
        self, queue: str | Sequence[str] = "jobs", tasks: Iterable[Task[Any, Any]] = ()
    ) -> list[JobRun]:
        """`run_jobs` on this database (from an async test)."""
        async with connect(self.url) as client:
            return await run_jobs(client, queue, tasks)

    def run_sync(
        self, queue: str | Sequence[str] = "jobs", tasks: Iterable[Task[Any, Any]] = ()
    ) -> list[JobRun]:
        """`run_jobs` on this database, from a test without an event loop."""
        return asyncio.run(self.run(queue, tasks))

    def close(self) -> None:
        self.client.close()


def _same(doc: JobDocument, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if not args and not kwargs:
        return True
    return list(doc.args) == list(args) and dict(doc.kwargs) == kwargs


def _call(doc: JobDocument) -> str:
    return _call_of(list(doc.args), dict(doc.kwargs))


def _call_of(args: list[Any], kwargs: dict[str, Any]) -> str:
    return "(" + ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())]) + ")"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redline_server() -> Iterator[str]:
    """The session's server URL (``REDLINE_TEST_URL``, else an embedded Valkey)."""
    given = os.environ.get("REDLINE_TEST_URL")
    if given:
        yield given
        return
    server = EmbeddedServer(port=_free_port(), config={"save": "", "databases": "10000"})
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redline_url(redline_server: str) -> str:
    """An empty database of this test's own on the session's server."""
    base = redline_server.rsplit("/", 1)[0]
    url = f"{base}/{next(_databases)}"
    with connect_sync(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def redline_jobs(redline_url: str) -> Iterator[Jobs]:
    """`Jobs` on this test's database."""
    jobs = Jobs(redline_url)
    yield jobs
    jobs.close()


if importlib.util.find_spec("pytest_asyncio") is not None:  # the async fixture needs it
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def redline_client(redline_url: str) -> AsyncIterator[AsyncClient]:
        """An asyncio client on this test's database (needs pytest-asyncio)."""
        client = connect(redline_url)
        yield client
        await client.aclose()
