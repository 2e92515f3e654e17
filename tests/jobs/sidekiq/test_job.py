"""Sidekiq's job format: parsing, what a failure writes, the backoff, the class map."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from redline.errors import JobError, JobSerializationError
from redline.jobs import Tasks, task
from redline.jobs.sidekiq.job import SidekiqJob, encode, failed, new_job, retry_delay
from redline.jobs.sidekiq.worker import SidekiqSettings, tasks_by_class

RAW = (
    b'{"retry":3,"queue":"default","class":"HardWorker","args":[1,"bob"],'
    b'"jid":"b4a577edbccf1d805744efa9","created_at":1767225600.1,"enqueued_at":1767225600.2,'
    b'"tags":["x"],"wrapped":"MyJob"}'
)


def test_a_job_is_read_and_written_back_with_every_field() -> None:
    job = SidekiqJob.parse(RAW)
    assert (job.class_name, job.args, job.jid) == ("HardWorker", [1, "bob"], job.fields["jid"])
    assert json.loads(encode(job.fields)) == json.loads(RAW)
    assert encode(job.fields) == RAW  # compact, as Ruby's JSON.generate writes it


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"class":"A","args":[NaN]}',
        b"[1,2]",
        b'{"args":[]}',
        b'{"class":"","args":[]}',
        b'{"class":"A","args":3}',
    ],
)
def test_what_no_worker_can_run_is_refused_with_the_reason(raw: bytes) -> None:
    with pytest.raises(JobSerializationError, match="sidekiq job"):
        SidekiqJob.parse(raw)


@pytest.mark.parametrize(("retry", "expected"), [(None, 7), (True, 25), (False, 0), (2, 2), (0, 0)])
def test_retries_come_from_the_job_else_the_task(retry: object, expected: int) -> None:
    fields = {"class": "A", "args": []} | ({} if retry is None else {"retry": retry})
    assert SidekiqJob(fields, b"").max_retries(task_retries=7) == expected


def test_a_first_failure_then_a_second_as_sidekiqs_job_retry_writes_them() -> None:
    job = SidekiqJob.parse(RAW)
    first = failed(job, ValueError("x" * 20_000), now=10.0)
    assert (first["retry_count"], first["failed_at"], first["error_class"]) == (
        0,
        10.0,
        "ValueError",
    )
    assert len(first["error_message"]) == 10_000 and "retried_at" not in first
    assert first["tags"] == ["x"] and first["wrapped"] == "MyJob"
    second = failed(SidekiqJob(first, b""), KeyError("k"), now=20.0)
    assert (second["retry_count"], second["failed_at"], second["retried_at"]) == (1, 10.0, 20.0)
    assert "error_backtrace" not in second


def test_a_job_that_asks_for_a_backtrace_gets_it_compressed_as_sidekiq_does() -> None:
    job = SidekiqJob({"class": "A", "args": [], "queue": "q", "backtrace": 1}, b"")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        fields = failed(job, exc, now=1.0)
    lines = json.loads(zlib.decompress(base64.b64decode(fields["error_backtrace"])))
    assert len(lines) == 1 and "raise RuntimeError" in lines[0]


def test_a_retry_queue_takes_the_retry() -> None:
    job = SidekiqJob({"class": "A", "args": [], "queue": "q", "retry_queue": "slow"}, b"")
    assert failed(job, ValueError(), now=1.0)["queue"] == "slow"


def test_the_backoff_is_sidekiqs() -> None:
    for count in (0, 1, 5):
        delays = {retry_delay(count) for _ in range(300)}
        low = count**4 + 15
        assert min(delays) >= low and max(delays) <= low + 9 * (count + 1)
        assert len(delays) > 1  # the jitter


def test_a_new_job_has_sidekiqs_fields() -> None:
    fields = new_job("HardWorker", (1,), "default", True, tags=["t"])
    assert set(fields) == {"retry", "queue", "class", "args", "jid", "created_at", "tags"}
    assert len(fields["jid"]) == 24 and fields["args"] == [1]


def test_classes_map_to_tasks_and_a_class_claimed_twice_is_refused() -> None:
    tasks = Tasks()

    @tasks.task(sidekiq_class="HardWorker")
    def one() -> None: ...

    @tasks.task(name="Other")
    def two() -> None: ...

    assert tasks_by_class(tasks) == {"HardWorker": one, "Other": two}
    tasks.add(task(name="x.y", sidekiq_class="Other")(lambda: None))
    with pytest.raises(JobError, match="both claim sidekiq class 'Other'"):
        tasks_by_class(tasks)
    with pytest.raises(JobError, match="sidekiq_class must not be empty"):
        task(sidekiq_class="")(lambda: None)


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(JobError, match="unknown='drop'"):
        SidekiqSettings(unknown="drop")
    with pytest.raises(JobError, match="more often than it expires"):
        SidekiqSettings(beat=60, expire=60)
