"""One exception hierarchy for everything a user of redline can cause."""

from __future__ import annotations

import re
import traceback

import redis.exceptions

__all__ = [
    "TRANSIENT",
    "ConfigError",
    "ConnectionURLError",
    "CrossSlotError",
    "EmbeddedServerError",
    "EnvelopeError",
    "JobError",
    "JobFailed",
    "JobSerializationError",
    "JobTimeout",
    "QueryError",
    "QueueError",
    "RedlineError",
    "ReplicationError",
    "ServerFullError",
    "ShutdownRequested",
    "UnknownTaskError",
    "WorkflowError",
    "WorkflowFailed",
    "import_failure",
]


# Errors that mean "the server is unreachable for now": retried with backoff, never fatal.
# On a cluster that includes a topology in motion: redirections that outlast redis-py's retries
# while a slot migrates (TRYAGAIN, "TTL exhausted"), a failover (CLUSTERDOWN, READONLY).
TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
)


class RedlineError(Exception):
    """Base of every error redline raises on purpose."""


# user:password@ in any text: a URL inside a refused value must not show its password.
_CREDENTIALS = re.compile(r"(://[^:/@\s'\"]*):[^@\s'\"]*@")


class ConfigError(RedlineError):
    """A configuration that cannot be used; `problems` has one line per field (passwords in
    URLs masked, since problems quote the values they refuse)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = [_CREDENTIALS.sub(r"\1:***@", p) for p in problems]
        problems = self.problems
        super().__init__("invalid configuration:\n" + "\n".join(problems))


class ConnectionURLError(RedlineError):
    """A Redis URL that redline cannot turn into a client."""


class CrossSlotError(RedlineError):
    """Keys that one atomic operation touches do not hash to one cluster slot."""


class EmbeddedServerError(RedlineError):
    """The embedded Valkey server could not be started or found."""


class QueueError(RedlineError):
    """A queue operation called with arguments it cannot use (the message says which)."""


class ServerFullError(RedlineError):
    """The server refused a write: it is at ``maxmemory`` with the ``noeviction`` policy (OOM).

    `stored` has the ids of the payloads stored before the refusal (a push of more than one
    batch may have stored its first batches); the others were not stored.
    """

    def __init__(self, key: str, stored: list[str], refused: int) -> None:
        self.key, self.stored, self.refused = key, stored, refused
        super().__init__(
            f"queue {key!r}: the Redis server is out of memory (at maxmemory, policy noeviction) "
            f"and refused the push; {len(stored)} payloads stored, {refused} not stored. "
            "Consume or purge queues, raise maxmemory, or retry later; nothing already queued "
            "is lost"
        )


class ReplicationError(RedlineError):
    """Fewer replicas than asked for acknowledged a write within the timeout (``WAIT``).

    The write is on the primary but not known to be on a replica: a failover now could lose it.
    """

    def __init__(self, key: str, ids: list[str], wanted: int, acked: int) -> None:
        self.key, self.ids, self.wanted, self.acked = key, ids, wanted, acked
        super().__init__(
            f"queue {key!r}: {len(ids)} payloads pushed, but only {acked} of {wanted} replicas "
            "acknowledged them in time; they are on the primary only. Retry the push (a retry "
            "may duplicate them) or check the replicas (INFO replication)"
        )


class ShutdownRequested(RedlineError):
    """Raised inside a service when its lifecycle says it must stop (hash deleted, replaced)."""


class QueryError(RedlineError):
    """An rquery request that cannot be run; `code` names the kind, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)

    def document(self) -> dict[str, str]:
        """The error as it goes into a reply: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": str(self)}


class EnvelopeError(RedlineError):
    """A queued HTTP message that is not a valid redline request/response envelope."""


class JobError(RedlineError):
    """A job that cannot be enqueued, run or read as asked."""


class JobSerializationError(JobError):
    """Job arguments or a result that the job document (JSON) cannot carry."""


class UnknownTaskError(JobError):
    """A job names a task the worker does not have."""


class JobTimeout(JobError, TimeoutError):
    """A job ran longer than its task's timeout, or its result did not come in time."""


class JobFailed(JobError):
    """The job a caller waits on ended dead-lettered; `error` and `traceback` say why."""

    def __init__(self, job_id: str, error: str, traceback: str = "") -> None:
        self.job_id, self.error, self.traceback = job_id, error, traceback
        super().__init__(f"job {job_id} failed: {error}")


class WorkflowError(JobError):
    """A workflow (chain, group, chord, DAG) that cannot be built, enqueued or read as asked."""


class WorkflowFailed(WorkflowError):
    """The workflow a caller waits on failed (`member` failed after its retries, with
    `error`) or was cancelled (`member` is then "")."""

    def __init__(self, workflow_id: str, state: str, member: str = "", error: str = "") -> None:
        self.workflow_id, self.state, self.member, self.error = workflow_id, state, member, error
        why = f": member {member!r} failed: {error}" if member else ""
        super().__init__(f"workflow {workflow_id} {state}{why}")


def import_failure(name: str, exc: BaseException) -> str:
    """One line on why importing the user's module `name` (dotted, or a .py file) failed: the
    error, where it was raised, and how to see the whole traceback."""
    if isinstance(exc, ImportError):
        return str(exc)  # "No module named 'x'" says it all
    if isinstance(exc, SyntaxError):
        what, where = f"SyntaxError: {exc.msg}", f"{exc.filename}:{exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        what = f"{type(exc).__name__}: {exc}"
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else name
    again = f"python {name}" if name.endswith(".py") else f"python -c 'import {name}'"
    return f"{what} at {where} (`{again}` shows the traceback)"
