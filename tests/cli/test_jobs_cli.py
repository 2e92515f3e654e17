"""`redline jobs cancel|status|events` and `redline queue pause|resume`: in this process
(`invoke`), `jobs status` as a real `redline` process (`run`)."""

from __future__ import annotations

import json

import redis

from redline.jobs import enqueue_sync, job_keys
from redline.jobs.worker import QUEUES_KEY
from tests.helpers import invoke, run
from tests.jobs import control_tasks as c


def test_cancel_status_and_events_of_a_waiting_job(sredis: redis.Redis, redis_url: str) -> None:
    job_id = enqueue_sync(sredis, c.mark, redis_url, "ran", 1)
    assert job_id is not None
    sredis.sadd(QUEUES_KEY, "c:jobs", "other")  # the queues workers serve: -q is found
    shown = run("jobs", "status", job_id, "--redis", redis_url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "waiting"
    done = invoke("jobs", "cancel", job_id, "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    assert f"cancel requested: job {job_id} on c:jobs" in done.stdout
    assert "warning" not in done.stderr
    typo = invoke("jobs", "cancel", job_id[:-1], "-q", "c:jobs", "--redis", redis_url)
    assert typo.returncode == 0  # recorded all the same: a job of another client may have none
    assert f"warning: c:jobs keeps no status of job {job_id[:-1]} (a typo?" in typo.stderr
    assert sredis.zscore(job_keys("c:jobs").cancelled, job_id) is not None
    printed = invoke("jobs", "events", "c:jobs", "--redis", redis_url)
    assert printed.returncode == 0 and f"enqueued job={job_id}" in printed.stdout
    assert "no events" not in printed.stderr
    quiet = invoke("jobs", "events", "c:nothing", "--redis", redis_url)
    assert quiet.returncode == 0 and quiet.stdout == ""  # a pipe reading events gets none
    assert "no events of queue 'c:nothing' after 0-0" in quiet.stderr
    unknown = invoke("jobs", "cancel", "nope", "--redis", redis_url)
    assert unknown.returncode == 2 and "give its queue with --queue" in unknown.stderr


def test_pause_and_resume(sredis: redis.Redis, redis_url: str) -> None:
    paused = invoke("queue", "pause", "a", "b", "--redis", redis_url)
    assert paused.returncode == 0 and "paused a" in paused.stdout
    assert sredis.exists(job_keys("a").paused, job_keys("b").paused) == 2
    sredis.sadd(QUEUES_KEY, "b")  # served by a worker: status lists it when paused
    shown = invoke("status", "--queue", "a", "--redis", redis_url)
    assert shown.returncode == 0, shown.stderr
    assert "a (paused)" in shown.stdout and "paused job queues: a, b" in shown.stdout, shown.stdout
    resumed = invoke("queue", "resume", "a", "--redis", redis_url)
    assert resumed.returncode == 0 and "resumed a" in resumed.stdout
    assert sredis.exists(job_keys("a").paused, job_keys("b").paused) == 1
