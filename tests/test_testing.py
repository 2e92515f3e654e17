"""The pytest plugin `redline.testing`: run_jobs, what was enqueued, and the plugin as a user
runs it (``pytest -p redline.testing``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from redline.connection import AsyncClient
from redline.errors import JobError
from redline.jobs import JobState, Task, enqueue, enqueue_sync
from redline.jobs.job import read_records
from redline.queue import ReliableQueue
from redline.testing import Jobs, run_jobs
from tests.integrations import plugin_tasks as pt

ROOT = Path(__file__).resolve().parents[1]


def runs(url: str) -> list[str]:
    with redis.Redis.from_url(url) as client:
        return [item.decode() for item in client.lrange(pt.RUNS, 0, -1)]


async def test_run_jobs_runs_every_waiting_job_and_the_jobs_they_enqueue(
    redline_client: AsyncClient, redline_url: str
) -> None:
    await enqueue(redline_client, pt.double, redline_url, 21)
    await enqueue(redline_client, pt.fan_out, redline_url, 2)
    done = await run_jobs(redline_client, "p:jobs")  # tasks found by name
    assert [(r.task, r.ok, r.attempt) for r in done] == [
        (pt.double.name, True, 1),
        (pt.fan_out.name, True, 1),
        (pt.double.name, True, 1),
        (pt.double.name, True, 1),
    ]
    assert done[0].result == 42  # kept: the task has result_ttl
    assert runs(redline_url) == ["double 21", "double 0", "double 1"]
    info = await ReliableQueue(redline_client).info("p:jobs")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)


async def test_failures_are_retried_at_once_then_dead_lettered(
    redline_client: AsyncClient, redline_url: str
) -> None:
    await enqueue(redline_client, pt.flaky, redline_url, 2)  # backoff 30 s: skipped here
    await enqueue(redline_client, pt.broken, redline_url)  # retries=1: two runs, then dead
    done = await run_jobs(redline_client, "p:jobs", [pt.flaky, pt.broken])
    flaky = [(r.attempt, r.ok, r.dead) for r in done if r.task == pt.flaky.name]
    broken = [(r.attempt, r.ok, r.dead, r.error) for r in done if r.task == pt.broken.name]
    assert flaky == [(1, False, False), (2, False, False), (3, True, False)]
    assert broken == [
        (1, False, False, "ValueError: always"),
        (2, False, True, "ValueError: always"),
    ]
    dead = await ReliableQueue(redline_client).dead("p:jobs")
    assert len(dead) == 1 and "ValueError: always" in dead[0].reason
    [record] = await read_records(redline_client, "p:jobs", [done[-1].id])
    assert record is not None and record.state in (JobState.COMPLETE, JobState.DEAD)


async def test_a_job_of_an_unknown_task_is_dead_lettered_and_a_loop_is_stopped(
    redline_client: AsyncClient, redline_url: str
) -> None:
    await enqueue(redline_client, Task.ref("nowhere.to.be.found", queue="p:jobs"))
    [run] = await run_jobs(redline_client, "p:jobs")
    assert run.dead and "no task named 'nowhere.to.be.found'" in run.error
    for n in range(3):
        await enqueue(redline_client, pt.double, redline_url, n)
    with pytest.raises(JobError, match="still jobs on"):
        await run_jobs(redline_client, "p:jobs", limit=2)


def test_assert_enqueued_finds_one_job_or_says_what_is_waiting(
    redline_jobs: Jobs, redline_url: str
) -> None:
    enqueue_sync(redline_jobs.client, pt.double, redline_url, 7)
    enqueue_sync(redline_jobs.client, pt.double, redline_url, 8)
    doc = redline_jobs.assert_enqueued(pt.double, redline_url, 7)
    assert doc.args == (redline_url, 7)
    assert [d.args[1] for d in redline_jobs.enqueued("p:jobs")] == [7, 8]
    with pytest.raises(AssertionError, match=r"found 0; waiting:\n  tests.integrations") as caught:
        redline_jobs.assert_enqueued(pt.double, redline_url, 9)
    assert "double('redis://" in str(caught.value)
    with pytest.raises(AssertionError, match="found 2"):
        redline_jobs.assert_enqueued(pt.double)
    assert [r.ok for r in redline_jobs.run_sync("p:jobs")] == [True, True]  # no event loop here
    assert redline_jobs.enqueued("p:jobs") == []


def test_each_test_gets_an_empty_database(redline_jobs: Jobs, redline_url: str) -> None:
    assert redline_jobs.client.dbsize() == 0
    redline_jobs.client.set("left:behind", 1)  # the next test's database is another one


def test_the_plugin_as_a_user_runs_it_on_its_own_embedded_server(tmp_path: Path) -> None:
    """``pytest -p redline.testing`` on the documented example test, in a fresh process with
    no REDLINE_TEST_URL: the plugin starts (and stops) an embedded server of its own."""
    env = {k: v for k, v in os.environ.items() if k != "REDLINE_TEST_URL"}
    env["PYTHONPATH"] = str(ROOT)
    example = ROOT / "examples" / "fastapi_signup" / "test_signup.py"
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    command = ["-m", "pytest", "-p", "redline.testing", "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(
        [sys.executable, *command, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
