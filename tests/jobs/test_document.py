"""The job document: JSON both ways, clear refusals, any client can produce one."""

from __future__ import annotations

import json

import pytest

from redline.errors import JobSerializationError
from redline.jobs.document import JobDocument, job_keys
from redline.keys import hash_slot


def test_round_trip_keeps_every_field() -> None:
    doc = JobDocument(
        "app.send", ("a", 1, None, [1.5]), {"k": {"x": True}}, "mail", unique="u1", result_ttl=30
    )
    back = JobDocument.decode(doc.encode())
    assert back == JobDocument(
        "app.send",
        ("a", 1, None, [1.5]),
        {"k": {"x": True}},
        "mail",
        id=doc.id,
        enqueued_at=doc.enqueued_at,
        unique="u1",
        result_ttl=30,
    )


def test_payload_is_plain_documented_json() -> None:
    doc = JobDocument("app.ping", ("é",), id="x1", enqueued_at=5.0)
    assert json.loads(doc.encode()) == {
        "v": 1,
        "id": "x1",
        "task": "app.ping",
        "args": ["é"],
        "kwargs": {},
        "enqueued_at": 5.0,
        "queue": "jobs",
    }


def test_bytes_argument_is_refused_naming_it() -> None:
    with pytest.raises(JobSerializationError, match=r"argument 1: bytes value b'\\xff'.*base64"):
        JobDocument("app.t", ("ok", b"\xff")).encode()


def test_keyword_that_is_not_json_is_named() -> None:
    with pytest.raises(JobSerializationError, match="keyword argument 'when': set"):
        JobDocument("app.t", (), {"when": {1}}).encode()


def test_nan_is_refused() -> None:
    with pytest.raises(JobSerializationError, match="argument 0"):
        JobDocument("app.t", (float("nan"),)).encode()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"hello", "not JSON"),
        (b"[1]", "not a job document"),
        (b'{"task": "t", "v": 2}', "version 2"),
        (b'{"task": "t", "args": {}}', "'args' must be a list"),
    ],
)
def test_payloads_that_are_not_jobs_are_explained(payload: bytes, match: str) -> None:
    with pytest.raises(JobSerializationError, match=match):
        JobDocument.decode(payload)


def test_minimal_foreign_document_gets_defaults() -> None:
    doc = JobDocument.decode(b'{"task": "app.ping"}', queue="q")
    assert (doc.task, doc.args, doc.kwargs, doc.queue) == ("app.ping", (), {}, "q")
    assert doc.id


def test_job_keys_share_the_queue_slot() -> None:
    keys = job_keys("orders")
    slots = {
        hash_slot(k)
        for k in (
            "orders",
            keys.record("1"),
            keys.unique("u"),
            keys.scheduled,
            keys.stats,
            keys.recent,
        )
    }
    assert len(slots) == 1
