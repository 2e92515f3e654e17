"""`enqueue_sidekiq` and `redline sidekiq push` write what Sidekiq::Client.push writes."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import redis

from redline.connection import AsyncClient
from redline.errors import JobError
from redline.jobs.sidekiq import enqueue_sidekiq, enqueue_sidekiq_sync
from tests.helpers import run


async def test_a_job_goes_on_its_queue_in_sidekiqs_format(aredis: AsyncClient) -> None:
    before = time.time()
    jid = await enqueue_sidekiq(aredis, "HardWorker", "bob", 5, queue="mail", retry=3)
    assert await aredis.smembers("queues") == {b"mail"}
    [raw] = await aredis.lrange("queue:mail", 0, -1)
    fields = json.loads(raw)
    assert fields.pop("created_at") >= before and fields.pop("enqueued_at") >= before
    assert fields == {"class": "HardWorker", "args": ["bob", 5], "queue": "mail", "retry": 3,
                      "jid": jid}  # fmt: skip


async def test_a_job_due_later_waits_in_schedule(aredis: AsyncClient) -> None:
    due = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    jid = await enqueue_sidekiq(aredis, "ReportJob", 7, at=due)
    [(raw, score)] = await aredis.zrange("schedule", 0, -1, withscores=True)
    assert score == pytest.approx(due.timestamp())
    fields = json.loads(raw)
    assert fields["jid"] == jid and "enqueued_at" not in fields and "at" not in fields
    assert not await aredis.exists("queue:default")
    await enqueue_sidekiq(aredis, "ReportJob", 8, at=time.time() - 5)  # past: now, like Sidekiq
    assert await aredis.llen("queue:default") == 1


def test_the_sync_client_writes_the_same(sredis: redis.Redis) -> None:
    jid = enqueue_sidekiq_sync(sredis, "HardWorker", {"a": [1]}, backtrace=True)
    fields = json.loads(sredis.rpop("queue:default") or b"")
    assert (fields["jid"], fields["args"], fields["backtrace"]) == (jid, [{"a": [1]}], True)
    assert fields["retry"] is True and fields["queue"] == "default"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: enqueue_sidekiq_sync(c, ""), "give the worker class name"),
        (lambda c: enqueue_sidekiq_sync(c, "A", queue=""), "queue is empty"),
        (lambda c: enqueue_sidekiq_sync(c, "A", b"raw"), "bytes"),
        (lambda c: enqueue_sidekiq_sync(c, "A", at=dt.datetime(2030, 1, 1)), "no timezone"),
    ],
)
def test_bad_jobs_are_refused_before_anything_is_written(
    sredis: redis.Redis, call: object, message: str
) -> None:
    with pytest.raises(JobError, match=message):
        call(sredis)  # type: ignore[operator]
    assert sredis.dbsize() == 0


def test_the_push_command(redis_url: str, sredis: redis.Redis) -> None:
    done = run("sidekiq", "push", "HardWorker", "bob", "5", '{"k":1}', '"7"', "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    fields = json.loads(sredis.rpop("queue:default") or b"")
    assert (fields["jid"], fields["args"]) == (done.stdout.strip(), ["bob", 5, {"k": 1}, "7"])
    done = run(
        "sidekiq", "push", "A", "-q", "q2", "--in", "60", "--retry", "2", "--redis", redis_url
    )
    assert done.returncode == 0, done.stderr
    [raw] = sredis.zrange("schedule", 0, -1)
    assert json.loads(raw)["retry"] == 2 and json.loads(raw)["queue"] == "q2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retry", "maybe"], "true, false or a number"),
        (["--at", "tomorrow"], "unix seconds or an ISO 8601"),
        (["--at", "2030-01-01T09:00"], "no time zone"),
        (["--at", "1", "--in", "1"], "not both"),
    ],
)
def test_the_push_command_says_what_is_wrong(redis_url: str, args: list[str], message: str) -> None:
    done = run("sidekiq", "push", "A", *args, "--redis", redis_url)
    assert done.returncode == 2 and message in done.stderr
