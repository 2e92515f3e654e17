"""Rate limits, concurrency caps and expiry: which popped jobs may start now.

A worker passes each batch it pops through its `Gate`. Jobs of tasks with no limit and no
expiry go straight through (a worker none of whose tasks has one does not even read them);
the others of one queue are decided by one script call per batch (``job_admit``), atomically
over keys in the queue's cluster slot, each limit's set trimmed, counted and written once:

- concurrency: a running job holds a slot, a member of ``{q}:job-concurrency:<task>[:<key>]``
  scored by its lease deadline and named for the worker that holds it. When the job ends the
  worker keeps the slot for its next job of that limit, which then starts with no call
  (`admit_held`; `jobs.held_slots`); a slot kept free a moment goes back with the next
  admission call (or one ``job_slot_release`` call), waking the first job waiting for one.
  A killed worker's slots are reclaimed once their deadline passes, like its leases.
- rate: the starts are logged in ``{q}:job-rate:<task>[:<key>]``, one member per admission
  call scored by when it was made, carrying how many it admitted (and a running total, so the
  window is counted with two reads); a job is admitted while fewer than N started in the last
  period (a sliding window). A call also takes starts ahead, which the worker spends on its
  next jobs of that limit with no call, within `held_slots.SPEND` (`admit_held`).
- refused jobs go back to their queue's delayed set, due when they may start, with their
  delivery count taken back: the wait is not an attempt, and holds no worker slot. Admitted
  ones stay in the batch they were leased with, so their ack stays the batch's one write.
- expiry: a job not started by its deadline is acknowledged without running, recorded as
  ``expired`` and counted in the queue's ``expired`` counter.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from redline.connection.channels import Batched
from redline.errors import JobSerializationError
from redline.jobs.admission import (
    Admission,
    Asked,
    Asking,
    Held,
    Job,
    Limit,
    Limits,
    Verdict,
    limits_of,
    verdicts,
)
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.gate_slots import Returns
from redline.jobs.held_slots import Slots, Starts
from redline.jobs.job import JobRecord, describe_args
from redline.jobs.library import LIBRARY
from redline.jobs.options import Rate, parse_rate
from redline.jobs.priority import Levels
from redline.jobs.records import note_recent, record_failure
from redline.jobs.task import Task, Tasks
from redline.jobs.usage import Registrar, limit_keys, member
from redline.queue import Delivery, ReliableQueue
from redline.scripting.scripts import run, sha

__all__ = ["Gate", "limit_keys"]  # limit_keys: from jobs.usage, where it is named

log = logging.getLogger(__name__)

EXPIRES_MARK = b'"expires"'  # a document that carries its own deadline
ESCAPE_MARK = b"\\"  # a document with an escape in it: a task name may be written escaped
# Names every JSON encoder writes as they are: a document of such a task has its quoted name.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:-]+\Z")


def _limited(task: Task[Any, Any]) -> bool:
    return task.concurrency is not None or task.rate_limit is not None


def _marks(guarded: dict[str, Task[Any, Any]]) -> tuple[bytes, ...] | None:
    """What a payload that `Gate.admit` must judge contains (one at least): an expiry, an
    escape, or a guarded task's quoted name; None when a name could be written otherwise."""
    if not guarded:
        return (EXPIRES_MARK,)
    if not all(_PLAIN_NAME.match(name) for name in guarded):
        return None
    return (EXPIRES_MARK, ESCAPE_MARK, *(f'"{name}"'.encode() for name in guarded))


class Gate:
    """Admits popped jobs under their tasks' limits and expiry (see the module docstring)."""

    def __init__(
        self,
        queue: ReliableQueue,
        tasks: Tasks,
        levels: Levels,
        expired: Callable[[Delivery, JobDocument], None] | None = None,
    ) -> None:
        self.queue, self.levels = queue, levels
        self.expired = expired  # told of each job dropped unrun (the worker writes its event)
        self.guarded = {t.name: t for t in tasks.values() if _limited(t) or t.expires}
        self.marks = _marks(self.guarded)  # None: every batch is judged
        self.held: dict[tuple[str, str], tuple[Held, str]] = {}  # delivery -> its limit, slot
        self.documents: dict[tuple[str, str], JobDocument] = {}  # admitted, decoded here
        self.judged: dict[tuple[str, str], _Judged] = {}  # popped ahead, judged (`prepare`)
        self.specs: dict[tuple[str, str, str | None, str | None], _Spec] = {}
        self.task_specs: dict[tuple[str, str], _Spec] = {}  # (source key, task): no limit keys
        self.returns = Returns(queue.client)  # finished jobs' slots, to give back
        self.slots = Slots(self.returns)  # the slots this worker holds, kept between jobs
        self.starts = Starts()  # the starts it took ahead under rate limits
        self.waited = -1e9  # monotonic time a job was last put back to wait
        self.registrar = Registrar()  # the limits in use, registered for readers
        # The admissions' own connection: an admission is on the way from free run slots to
        # running jobs, and on the client's shared channel it waited behind the settling's
        # events write about a third of the time.
        self.channel = Batched(queue.client)

    @property
    def waiting(self) -> bool:
        """Whether jobs were put back lately: a release may wake one any moment, so blocking
        pops should come back soon."""
        return time.monotonic() - self.waited < self.queue.lease

    def judges(self, deliveries: Sequence[Delivery]) -> bool:
        """Whether `admit` may have anything to decide for `deliveries` (a limit or an
        expiry): a look for marks in the payloads, so that the jobs of tasks with neither
        start at once, without being decoded here, even beside limited tasks."""
        if self.marks is None:
            return bool(deliveries)
        marks = self.marks
        return any(any(mark in d.payload for mark in marks) for d in deliveries)

    def prepare(self, deliveries: Sequence[Delivery]) -> None:
        """Judge `deliveries` now (decode each, find its task and limits), ahead of their
        admission: the worker's jobs popped ahead wait for run slots meanwhile, and their
        `admit` then only builds and sends the call. Whether one has expired is still looked
        at by `admit`."""
        if self.judges(deliveries):
            for d in deliveries:
                self.judged[(d.key, d.id)] = self._judge(d)

    @property
    def holds(self) -> bool:
        """Whether this worker holds free slots or starts taken ahead (`admit_held`)."""
        return bool(self.slots.free or self.starts.chunks)

    def admit_held(self, deliveries: Sequence[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """Of `deliveries`, those that start now with no call: jobs of unlimited tasks, and
        those that find a slot this worker holds free under their cap and a start it took
        ahead under their rate (`jobs.held_slots`), none expired; and the rest, for `admit`.
        A job started so is not checked as still held (its lease lapsed and another worker
        took it): it runs again, at least once, and its ack is refused by the fencing. Jobs
        under a rate start so only if all of the batch's under it can (a batch split between
        its starts and an admission would run as two smaller batches from then on)."""
        if not self.holds:
            return [], list(deliveries)
        started: list[Delivery] = []
        rest: list[Delivery] = []
        now, judged = time.time(), self.judged
        found_all, short = self._needs(deliveries)
        for d, found in zip(deliveries, found_all, strict=True):
            at = (d.key, d.id)
            _, doc, spec, deadline = found
            name = None
            if deadline is not None and d.deliveries == 1 and now > deadline:
                pass  # expired: `admit` drops it
            elif spec is None:
                name = ""
            elif spec.limits[4] not in short:
                name = self._held_for(spec)
            if name is None:
                judged[at] = found
                rest.append(d)
                continue
            started.append(d)
            if doc is not None:
                self.documents[at] = doc
            if spec is not None and spec.held is not None:
                self.held[at] = (spec.held, name)
        return started, rest

    def _needs(self, deliveries: Sequence[Delivery]) -> tuple[list[_Judged], set[Limit]]:
        """`deliveries` judged (taken from `judged`), and the rate limits whose starts taken
        ahead do not cover all of their jobs."""
        judged, found_all = self.judged, []
        needed: dict[Limit, int] = {}
        for d in deliveries:
            found = judged.pop((d.key, d.id), None) or self._judge(d)
            found_all.append(found)
            spec = found[2]
            if spec is not None and (log := spec.limits[4]) is not None:
                needed[log] = needed.get(log, 0) + 1
        short = {log for log, n in needed.items() if self.starts.left(log) < n}
        return found_all, short

    def _held_for(self, spec: _Spec) -> str | None:
        """What a job under `spec` starts on with no call: its free slot's name ("": no cap),
        a start taken ahead spent if it has a rate; None: it needs the admission."""
        log = spec.limits[4]
        if log is not None:
            if not self.starts.take(log):
                return None
            self.starts.note(log)
        if spec.held is None:
            return ""
        name = self.slots.take(spec.held)
        if name is None and log is not None:
            self.starts.give(log)
        return name

    async def admit(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """The deliveries that may run now; the others wait, expire or were not ours."""
        if not self.judges(deliveries):
            return list(deliveries)
        asking = self.ask(deliveries)
        return await self._concluded(asking, await self._decide_all(asking.calls))

    def ask(self, deliveries: Sequence[Delivery]) -> Asking:
        """`admit`'s first half, for a caller that sends the admission with a call of its own
        (the worker's pop ahead: `Asking.commands`, then `answer` with their replies)."""
        verdicts, docs, calls = self._verdicts(deliveries)
        asked = list(calls.values())
        return Asking(deliveries, verdicts, docs, asked, [self._command(a) for a in asked])

    async def answer(self, asking: Asking, replies: Sequence[Any]) -> list[Delivery]:
        """`admit`'s second half: the deliveries of `asking` admitted, by the replies of its
        commands (a reply that is an error raises it, its slots to give back queued again; a
        server that lacks the script or the library has it loaded and the call made again)."""
        decided: list[list[int]] = []
        for asked, reply in zip(asking.calls, replies, strict=True):
            if isinstance(reply, NoScriptError) or LIBRARY.missing(reply):
                decided.append(await self._decide(asked))
            elif isinstance(reply, Exception):
                self.unasked(asking)
                raise reply
            else:
                decided.append(self._read(asked, reply))
        if LIBRARY.uses_functions(self.queue.client) is None:  # the next rides go as FCALL
            await LIBRARY.load(self.queue.client)
        return await self._concluded(asking, decided)

    def unasked(self, asking: Asking) -> None:
        """`asking`'s commands failed: the slots they were to give back are queued again."""
        for asked in asking.calls:
            self.returns.add(asked.call.queue, asked.call.releases)

    async def _concluded(self, asking: Asking, decided: list[list[int]]) -> list[Delivery]:
        verdicts, admit = asking.verdicts, Verdict.ADMIT
        for indexes in decided:
            for i in indexes:
                verdicts[i] = admit
        admitted: list[Delivery] = []
        expired: list[tuple[Delivery, JobDocument]] = []
        documents = self.documents
        for d, v, doc in zip(asking.deliveries, verdicts, asking.docs, strict=True):
            if v is admit:
                admitted.append(d)
                if doc is not None:  # the worker need not decode it again
                    documents[(d.key, d.id)] = doc
            elif v is Verdict.EXPIRED and doc is not None:
                expired.append((d, doc))
        if expired:
            await self._expire(expired)
        return admitted

    def _verdicts(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[Verdict], list[JobDocument | None], dict[str, Asked]]:
        """What is known of `deliveries` before the script's answer: ADMIT, EXPIRED or WAIT
        (those in the admission calls returned, by queue), and their documents."""
        verdicts: list[Verdict] = []
        docs: list[JobDocument | None] = []
        calls: dict[str, Asked] = {}
        routes: dict[str, tuple[Asked, int]] = {}  # source key -> its call, its priority
        now, judged = time.time(), self.judged
        for i, d in enumerate(deliveries):
            found = judged.pop((d.key, d.id), None)
            verdict, doc, spec, deadline = found or self._judge(d)
            # Only before its first start: a retry, or a redelivery after a crash, has started.
            if deadline is not None and d.deliveries == 1 and now > deadline:
                verdict = Verdict.EXPIRED
            elif spec is not None:
                if spec.paced and (log := spec.limits[4]) is not None:
                    self.starts.note(log)
                asked, priority = routes.get(d.key) or self._route(calls, routes, d.key)
                if asked.call.add(d, priority, spec.limits):  # first in this call
                    self._register(asked.call, spec)
                asked.jobs.append((i, d, spec.held))
            verdicts.append(verdict)
            docs.append(doc)
        return verdicts, docs, calls

    def document(self, delivery: Delivery) -> JobDocument:
        """The document of an admitted `delivery` (decoded once, by `admit`, when it did)."""
        doc = self.documents.pop((delivery.key, delivery.id), None)
        return JobDocument.decode(delivery.payload, delivery.key) if doc is None else doc

    def _judge(self, d: Delivery) -> _Judged:
        """ADMIT, or WAIT (under a limit, for the script to decide, with the limits' spec);
        with the document, and the deadline it must start by (None: none)."""
        try:
            doc = JobDocument.decode(d.payload, d.key)
        except JobSerializationError:
            return Verdict.ADMIT, None, None, None  # the worker dead-letters it, with the reason
        task = self.guarded.get(doc.task)
        deadline = doc.expires
        if deadline is None and task is not None and task.expires:
            deadline = doc.enqueued_at + task.expires
        if task is None or not _limited(task):
            return Verdict.ADMIT, doc, None, deadline
        if task.concurrency_key is None and task.rate_key is None:  # task-wide limits only
            spec = self.task_specs.get((d.key, task.name))
            if spec is None:
                spec = self._spec(self.levels.queue_of(d.key), task, None, None)
                self.task_specs[(d.key, task.name)] = spec
            return Verdict.WAIT, doc, spec, deadline
        queue = self.levels.queue_of(d.key)
        keys = _key(task.concurrency_key, doc), _key(task.rate_key, doc)
        return Verdict.WAIT, doc, self._spec(queue, task, *keys), deadline

    def _route(
        self, calls: dict[str, Asked], routes: dict[str, tuple[Asked, int]], key: str
    ) -> tuple[Asked, int]:
        """The admission call of source `key`'s queue (made when new: the slots finished jobs
        hold go back with it), and `key`'s priority."""
        queue = self.levels.queue_of(key)
        asked = calls.get(queue)
        if asked is None:
            call = Admission(queue, self.returns.take(queue), self.slots.prefix())
            asked = calls[queue] = Asked(call)
        routes[key] = asked, self.levels.priority_of(key)
        return routes[key]

    def _register(self, call: Admission, spec: _Spec) -> None:
        """Have `call` (re)register `spec`'s limits in its queue's registry when due."""
        if spec.capped:
            call.register(self.registrar.due(call.queue, spec.capped))
        if spec.paced:
            call.register(self.registrar.due(call.queue, spec.paced))
            log = spec.limits[4]
            if log is not None and self.slots.keeps():  # a worker that will spend them
                call.take_ahead(log, self.starts.wanted(log))

    def _spec(
        self, queue: str, task: Task[Any, Any], slots_key: str | None, rate_key: str | None
    ) -> _Spec:
        """The keys and registry members of `task`'s limits on `queue` (kept: most jobs of a
        task share them, and building them is most of an admission's client CPU)."""
        spec = self.specs.get((queue, task.name, slots_key, rate_key))
        if spec is None:
            if len(self.specs) > 10_000:  # many per-key limits: forget, and build again
                self.specs.clear()
            parsed = parse_rate(task.rate_limit) if task.rate_limit else None
            count, period = _count_period(parsed)
            slots = limit_keys(queue, "concurrency", task.name, slots_key)
            spec = _Spec(
                limits_of(
                    task.concurrency or 0,
                    slots,
                    parsed,
                    limit_keys(queue, "rate", task.name, rate_key),
                ),
                (queue, slots) if task.concurrency else None,
                _described("concurrency", task, slots_key, task.concurrency, 0),
                _described("rate", task, rate_key, count, period),
            )
            self.specs[(queue, task.name, slots_key, rate_key)] = spec
        return spec

    async def _decide_all(self, calls: list[Asked]) -> list[list[int]]:
        """`_decide` each call, at once. One call (one queue: the usual batch) is sent in this
        task, before it first yields: the worker lets it go out before its next pop ahead."""
        if len(calls) == 1:
            return [await self._decide(calls[0])]
        return list(await asyncio.gather(*(self._decide(c) for c in calls)))

    async def _decide(self, asked: Asked) -> list[int]:
        """Run one queue's admission; the indexes of the deliveries it admitted (the others
        wait, or were not held: stale)."""
        keys, args = asked.call.call(round(self.queue.lease * 1000))
        try:
            replies = await LIBRARY.call(self.queue.client, "job_admit", keys, args, self.channel)
        except BaseException:  # not given back: the next call tries again
            self.returns.add(asked.call.queue, asked.call.releases)
            raise
        return self._read(asked, replies)

    def _command(self, asked: Asked) -> tuple[Any, ...]:
        """One queue's admission as a command to send with others (`ask`): an FCALL where the
        jobs' library is loaded on the client, else an EVALSHA."""
        keys, args = asked.call.call(round(self.queue.lease * 1000))
        command = LIBRARY.command(self.queue.client, "job_admit", keys, args)
        return command or ("EVALSHA", sha("job_admit"), len(keys), *keys, *args)

    def _read(self, asked: Asked, replies: Any) -> list[int]:
        """The indexes of `asked`'s deliveries that its admission's `replies` admitted."""
        codes = replies[0]  # one character per job; all "1": each admitted (the usual)
        one = b"1" if isinstance(codes, bytes) else "1"  # bytes from redline's clients
        prefix = asked.call.prefix
        if len(replies) > 1:
            replies = self._granted(asked.call, replies)
        if len(replies) == 1 and len(codes) == len(asked.jobs) == codes.count(one):
            return self._all_admitted(asked.jobs, prefix)
        found = verdicts(replies)
        return [
            job[0]
            for job, v in zip(asked.jobs, found, strict=True)
            if self._admitted(job, prefix, *v)
        ]

    def _granted(self, call: Admission, replies: Any) -> Any:
        """`replies` less the starts `call` took ahead at their end (kept in `starts`)."""
        codes = replies[0]
        waits = b"cr" if isinstance(codes, bytes) else "cr"
        end = 1 + codes.count(waits[:1]) + codes.count(waits[1:])
        granted = replies[end:]
        for i in range(0, len(granted), 2):
            self.starts.grant(call.limit(int(granted[i])), int(granted[i + 1]), call.made)
        return replies[:end]

    def _all_admitted(self, jobs: list[Job], prefix: str) -> list[int]:
        for _, d, slots in jobs:
            if slots is not None:
                self._hold(d, slots, prefix + d.id)
        return [i for i, _, _ in jobs]

    def _hold(self, d: Delivery, slots: Held, name: str) -> None:
        """Admitted `d` holds slot `name` of `slots`, which this worker now owns."""
        self.held[(d.key, d.id)] = slots, name
        self.slots.own(slots, name)

    def _admitted(self, job: Job, prefix: str, code: int, ms: int, why: str) -> bool:
        """Whether `job` was admitted (code 1; 0: put back to wait, -1: not held, stale); its
        slot, if it takes one, named `prefix` and its id."""
        _, d, slots = job
        if code == 1:
            if slots is not None:
                self._hold(d, slots, prefix + d.id)
            return True
        if code == 0:
            self.waited = time.monotonic()
            log.debug("job waits id=%s key=%s for=%s ms=%s", d.id, d.key, why, ms)
        return False

    def finish(self, delivery: Delivery) -> None:
        """`delivery` finished (or was returned): its slot, if it holds one, is kept for the
        worker's next job of its limit (`held_slots.Slots.done`) or goes back with the next
        admission call of its queue, or with `release`, whichever comes first; its document
        (or what `prepare` judged of it) is dropped if no run took it (one cancelled before it
        started, or popped ahead and given back unrun)."""
        at = (delivery.key, delivery.id)
        self.documents.pop(at, None)
        self.judged.pop(at, None)
        held = self.held.pop(at, None)
        if held is not None:
            self.slots.done(*held)

    async def release(self, deliveries: Iterable[Delivery]) -> None:
        """Give back the slots of finished jobs not given back yet (`gate_slots.Returns.send`:
        now, or, while the worker's jobs are fast, with its next admission); and, once the
        worker keeps slots no longer (it stops), the free ones it held."""
        for d in deliveries:
            self.finish(d)
        if self.slots.free and not self.slots.keeps():
            self.slots.give_back_free()
        await self.returns.send()

    async def extend(self) -> None:
        """Extend the slots this worker holds, and learn which limits have jobs waiting
        (`held_slots.Slots.check`): one call per queue."""
        await self.slots.check(self.queue.client, round(self.queue.lease * 1000))

    async def _expire(self, expired: Sequence[tuple[Delivery, JobDocument]]) -> None:
        """Drop jobs past their deadline: unlocked, acknowledged, recorded and counted."""
        for d, doc in expired:
            if doc.unique:
                unique = job_keys(self.levels.queue_of(d.key)).unique(doc.unique)
                await run(self.queue.client, "job_unlock", [unique], [doc.id])
        await self.queue.ack(*(d for d, _ in expired))
        pipe: Any = self.queue.client.pipeline(transaction=False)
        now = time.time()
        for d, doc in expired:
            queue = self.levels.queue_of(d.key)
            record = JobRecord(
                doc.id,
                JobState.EXPIRED,
                doc.task,
                describe_args(doc),
                d.deliveries - 1,
                enqueued_at=doc.enqueued_at,
                finished_at=now,
            )
            await record_failure(self.queue.client, queue, record)  # kept as failures are
            note_recent(pipe, queue, doc.id)
            pipe.hincrby(job_keys(queue).stats, "expired", 1)
            log.info("job expired id=%s task=%s", doc.id, doc.task)
        await pipe.execute()
        for d, doc in expired:
            if self.expired is not None:
                self.expired(d, doc)


@dataclass(frozen=True)
class _Spec:
    """One task's limits on one queue, for one pair of limit keys: as the admission call takes
    them, the queue and slots a job admitted under them holds (None: no cap), and their
    registry members ("" where the task has no such limit)."""

    limits: Limits
    held: Held | None
    capped: str
    paced: str


# A popped job judged: verdict (ADMIT or WAIT), document (None: not a job), the spec of its
# limits (None: none), the deadline it must start by (None: none).
_Judged = tuple[Verdict, JobDocument | None, _Spec | None, float | None]


def _described(kind: str, task: Task[Any, Any], key: str | None, count: int | None, ms: int) -> str:
    return member(kind, task.name, key, count, ms) if count else ""


def _count_period(parsed: Rate | None) -> tuple[int | None, int]:
    return (parsed.count, parsed.period_ms) if parsed else (None, 0)


def _key(of: Callable[..., Any] | None, doc: JobDocument) -> str | None:
    """A job's limit key; a key function that fails puts the job under the task-wide limit
    (logged), rather than stopping the worker on it."""
    if of is None:
        return None
    try:
        return str(of(*doc.args, **doc.kwargs))
    except Exception:
        log.exception("limit key function failed id=%s task=%s: task-wide limit", doc.id, doc.task)
        return None
