"""Sidekiq's job format and key names, read and written unchanged (Sidekiq 6.x).

A job is a JSON object in a Redis list ``queue:<name>`` (producers LPUSH, workers take from the
right), in the ``schedule`` sorted set (score: when it is due) or in ``retry`` / ``dead``:

    {"class": "HardWorker", "args": [1, "bob"], "queue": "default", "retry": true,
     "jid": "b4a577edbccf1d805744efa9", "created_at": 1767225600.1, "enqueued_at": 1767225600.2}

Fields this module does not know (tags, a middleware's own, ``wrapped`` of ActiveJob…) are kept
as they are: a job is parsed to a dict and written back from that dict.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import time
import traceback
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redline.errors import JobSerializationError
from redline.jobs.document import encode_value

__all__ = [
    "DEAD",
    "DEAD_MAX_JOBS",
    "DEAD_TIMEOUT",
    "MAX_RETRIES",
    "PROCESSES",
    "QUEUES",
    "RETRY",
    "SCHEDULE",
    "SidekiqJob",
    "encode",
    "failed",
    "new_job",
    "queue_key",
    "retry_delay",
]

# Sidekiq's own key names (lib/sidekiq/api.rb, client.rb, launcher.rb).
QUEUES = "queues"  # set of queue names
SCHEDULE = "schedule"  # zset: jobs due later, by due time
RETRY = "retry"  # zset: failed jobs waiting for their retry, by retry time
DEAD = "dead"  # zset: the morgue, by time of death
PROCESSES = "processes"  # set of process identities (each a hash with a 60 s TTL)
MAX_RETRIES = 25  # what ``"retry": true`` means (Sidekiq's default max_retries)
DEAD_MAX_JOBS = 10_000  # the morgue keeps this many jobs…
DEAD_TIMEOUT = 180 * 86400  # …for this long (Sidekiq's dead_max_jobs, dead_timeout_in_seconds)
ERROR_MESSAGE_MAX = 10_000  # characters of an error message kept, as Sidekiq does


def queue_key(name: str) -> str:
    """The list a queue's jobs wait in."""
    return f"queue:{name}"


def encode(fields: dict[str, Any]) -> bytes:
    """A job as Sidekiq writes it: compact JSON, UTF-8."""
    return encode_value(fields, f"sidekiq job {fields.get('jid', '')}").encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class SidekiqJob:
    """A job as fetched: its fields, and the exact bytes it was stored as (to remove it)."""

    fields: dict[str, Any]
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> SidekiqJob:
        """Raises JobSerializationError (with the reason) for what no Sidekiq worker can run."""
        try:
            fields = json.loads(raw, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise JobSerializationError(f"sidekiq job is not JSON ({exc}): {raw[:80]!r}") from None
        if not isinstance(fields, dict):
            raise JobSerializationError(f"sidekiq job is not a JSON object: {raw[:80]!r}")
        if not isinstance(fields.get("class"), str) or not fields["class"]:
            raise JobSerializationError(f"sidekiq job has no class: {raw[:80]!r}")
        if not isinstance(fields.get("args", []), list):
            raise JobSerializationError(f"sidekiq job's args are not a list: {raw[:80]!r}")
        return cls(fields, raw)

    @property
    def class_name(self) -> str:
        return str(self.fields["class"])

    @property
    def args(self) -> list[Any]:
        return list(self.fields.get("args", []))

    @property
    def jid(self) -> str:
        return str(self.fields.get("jid", ""))

    def max_retries(self, task_retries: int) -> int:
        """Retries this job gets: ``retry`` as a number, Sidekiq's 25 for ``true``, none for
        ``false``; the task's `retries` when the job does not say."""
        wanted = self.fields.get("retry")
        if wanted is None:
            return task_retries
        if isinstance(wanted, bool):
            return MAX_RETRIES if wanted else 0
        return int(wanted) if isinstance(wanted, int | float) else MAX_RETRIES


def new_job(
    class_name: str, args: Sequence[Any], queue: str, retry: bool | int, **extra: Any
) -> dict[str, Any]:
    """The fields of a new job, as Sidekiq::Client makes them (``enqueued_at`` is set at push)."""
    return {
        "retry": retry,
        "queue": queue,
        **extra,
        "class": class_name,
        "args": list(args),
        "jid": secrets.token_hex(12),
        "created_at": time.time(),
    }


def failed(job: SidekiqJob, exc: BaseException, now: float) -> dict[str, Any]:
    """The job's fields after a failed run, as Sidekiq's JobRetry writes them: the error,
    ``retry_count`` (0 after the first failure), ``failed_at`` / ``retried_at``, and the
    compressed backtrace when the job asks for one (``"backtrace": true`` or a line count)."""
    fields = dict(job.fields)
    fields["queue"] = fields.get("retry_queue") or fields.get("queue", "default")
    fields["error_message"] = str(exc)[:ERROR_MESSAGE_MAX]
    fields["error_class"] = type(exc).__name__
    if isinstance(fields.get("retry_count"), int):
        fields["retried_at"] = now
        fields["retry_count"] += 1
    else:
        fields["failed_at"] = now
        fields["retry_count"] = 0
    wanted = fields.get("backtrace")
    if wanted:
        lines = traceback.format_tb(exc.__traceback__)
        if not isinstance(wanted, bool) and isinstance(wanted, int):
            lines = lines[:wanted]
        packed = zlib.compress(json.dumps(lines).encode())
        fields["error_backtrace"] = base64.encodebytes(packed).decode()
    return fields


def retry_delay(retry_count: int) -> float:
    """Sidekiq's backoff: ``count**4 + 15 + rand(10) * (count + 1)`` seconds."""
    return retry_count**4 + 15 + random.randrange(10) * (retry_count + 1)
