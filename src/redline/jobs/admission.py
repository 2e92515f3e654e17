"""The calls of the limit scripts for one queue (`job_admit`, `job_slot_release`,
`job_slot_extend`): every key they touch goes in KEYS (all in the queue's cluster slot), and
ARGV refers to them by index (see each script's header). `jobs.limits` decides what to send."""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redline.jobs.document import JobDocument
from redline.jobs.options import MAX_PRIORITY, Rate
from redline.jobs.priority import priority_key
from redline.jobs.usage import KEPT, limits_key
from redline.queue import Delivery
from redline.queue.core import keys_of

__all__ = [
    "Admission",
    "Asked",
    "Asking",
    "Held",
    "Job",
    "Limit",
    "Limits",
    "Released",
    "Verdict",
    "Verdicts",
    "extend_call",
    "limits_of",
    "release_call",
    "verdicts",
]

Limit = tuple[str, str]  # a limit's two keys (`jobs.usage.limit_keys`)
Released = dict[Limit, list[str]]  # finished jobs' slots to give back: by limit, the jobs' ids
Call = tuple[list[str], list[Any]]  # a script call's keys and arguments
# A job's limits: cap (0: none), its slots (None: no cap), starts per period (0: none), period
# (ms), its log (None: no rate).
Limits = tuple[int, Limit | None, int, int, Limit | None]


@functools.lru_cache(maxsize=256)
def level_keys(queue: str) -> tuple[str, ...]:
    """The delayed zsets of `queue`'s priorities 0-9, then their deliveries hashes (where a
    released slot wakes the job waiting for it)."""
    levels = [keys_of(priority_key(queue, p)) for p in range(MAX_PRIORITY + 1)]
    return (*(k.delayed for k in levels), *(k.deliveries for k in levels))


@functools.lru_cache(maxsize=256)
def _source_keys(key: str) -> tuple[str, ...]:
    k = keys_of(key)
    return (k.inflight, k.delayed, k.deliveries, k.since, k.payloads, k.batches, k.batched)


class _Group:
    """Consecutive jobs of one source and spec, as `job_admit` takes them: source, spec, n,
    m, then m pairs (index in the group, delivery count) of the jobs not on their first
    delivery, then the ids joined by commas (message ids are digits): a group of jobs on
    their first delivery (most) is five arguments, however many jobs it has."""

    __slots__ = ("ids", "later", "source", "spec")

    def __init__(self, source: int, spec: int) -> None:
        self.source, self.spec = source, spec
        self.ids: list[str] = []
        self.later: list[int] = []  # index, delivery count, ...

    def add(self, d: Delivery) -> None:
        self.ids.append(d.id)
        if d.deliveries != 1:
            self.later += (len(self.ids), d.deliveries)

    def args(self) -> list[Any]:
        ids = ",".join(self.ids)
        return [self.source, self.spec, len(self.ids), len(self.later) // 2, *self.later, ids]


def _index(indexes: dict[Any, int], item: Any) -> int:
    """`item`'s 1-based index in `indexes`, added when new (dicts keep insertion order)."""
    return indexes.setdefault(item, len(indexes) + 1)


class Admission:
    """One `job_admit` call: the slots of `queue` to give back first, then the jobs to decide.
    Each distinct set of limits is sent once (a spec), and jobs go in groups of consecutive
    jobs of one source and spec (`_Group`, its ids in one argument): a popped batch costs a
    few arguments, not one per job, whatever its limits; so do the slots to give back (one
    argument per limit, its jobs' ids joined)."""

    def __init__(
        self, queue: str, releases: Mapping[Limit, Sequence[str]] | None = None, prefix: str = ""
    ) -> None:
        self.queue = queue
        # This call's slot names: prefix + job id (`jobs.held_slots`; "": the job's id).
        self.prefix = prefix
        self.made = time.monotonic()  # starts taken ahead are spent within SPEND of this
        self._ahead: dict[Limit, int] = {}  # rate limit -> starts asked to take ahead
        self.releases: Mapping[Limit, Sequence[str]] = releases or {}  # by limit, job ids
        self._sources: dict[str, int] = {}
        self._heads: list[list[Any]] = []  # by source: its priority, its jobs' one batch or None
        self._specs: dict[Limits, int] = {}
        self._limits: dict[Limit, int] = {}
        self._register: list[str] = []
        self._groups: list[_Group] = []  # consecutive jobs of one source and spec
        self._last: tuple[str, Any, Any] = ("", False, None)  # the last job's key, batch, limits

    def register(self, member: str) -> None:
        """(Re)register `member` in the queue's registry of limits in use ("": nothing)."""
        if member:
            self._register.append(member)

    def take_ahead(self, log: Limit, starts: int) -> None:
        """Ask for up to `starts` more starts under rate limit `log`, to spend without a call."""
        if starts > 0:
            self._ahead[log] = starts

    def limit(self, index: int) -> Limit:
        """The limit of 1-based `index` in this call (as its reply names one)."""
        return list(self._limits)[index - 1]

    def add(self, d: Delivery, priority: int, limits: Limits) -> bool:
        """Ask about `d` under `limits` (`limits_of`); True when this call had not met them."""
        last_key, last_batch, last_limits = self._last
        if d.batch is last_batch and limits is last_limits and d.key == last_key:
            self._groups[-1].add(d)  # the usual case: the last job's group goes on
            return False
        self._last = (d.key, d.batch, limits)
        source = self._sources.get(d.key)
        if source is None:
            source = self._sources[d.key] = len(self._sources) + 1
            self._heads.append([priority, d.batch])
        elif self._heads[source - 1][1] is not d.batch:  # several: the script looks each up
            self._heads[source - 1][1] = None
        spec = self._specs.get(limits)
        new = spec is None
        if spec is None:
            spec = self._specs[limits] = len(self._specs) + 1
        if not self._groups or (self._groups[-1].source, self._groups[-1].spec) != (source, spec):
            self._groups.append(_Group(source, spec))
        self._groups[-1].add(d)
        return new

    def call(self, lease_ms: int) -> Call:
        released: list[Any] = []
        for limit, ids in self.releases.items():
            if ids:
                released += (_index(self._limits, limit), ",".join(ids))
        specs: list[Any] = []
        for cap, slots, count, period, log in self._specs:
            slots_at = _index(self._limits, slots) if slots else 0
            specs += [cap, slots_at, count, period, _index(self._limits, log) if log else 0]
        keys = [limits_key(self.queue)]
        for source in self._sources:
            keys += _source_keys(source)
        if released:
            keys += level_keys(self.queue)
        for pair in self._limits:
            keys += pair
        ahead = ",".join(f"{self._limits[log]}={n}" for log, n in self._ahead.items())
        kept = f"{round(KEPT * 1000)}/{self.prefix}/{ahead}"
        args: list[Any] = [lease_ms, kept, len(self._sources), int(bool(released))]
        args += [len(self._limits), len(self._register), *self._register]
        args += [len(released) // 2, *released, len(self._specs), *specs, *self._batches()]
        return keys, [*args, *(x for group in self._groups for x in group.args())]

    def _batches(self) -> list[Any]:
        """Per source: its priority, the one batch its jobs were popped in ("": several or
        unknown) and that batch's `whole` (``n:id:token``: while the batch is as its pop left
        it, the script finds every job of it held with one read of the batch's head, as a
        whole-batch ack does)."""
        fields: list[Any] = []
        for priority, batch in self._heads:
            if batch is None:
                fields += (priority, "", "")
            else:
                fields += (priority, batch.name, batch.whole)
        return fields


class Verdict(enum.Enum):
    """What is known of a popped job before (or after) its admission's reply."""

    ADMIT = "admit"
    WAIT = "wait"
    EXPIRED = "expired"


Held = tuple[str, Limit]  # a limit whose slots a worker holds: its queue, its limit
Job = tuple[int, Delivery, Held | None]  # index, delivery, the slot it takes (None: no cap)


@dataclass
class Asked:
    """One queue's admission call, and the jobs it asks about (in the order it asks)."""

    call: Admission
    jobs: list[Job] = field(default_factory=list)


@dataclass
class Asking:
    """A batch's admission made (`Gate.ask`) and not answered yet (`Gate.answer`): the
    commands to send (one script call per queue), and what is known before their replies."""

    deliveries: Sequence[Delivery]
    verdicts: list[Verdict]
    docs: list[JobDocument | None]
    calls: list[Asked]
    commands: list[tuple[Any, ...]]


Verdicts = list[tuple[int, int, str]]
_WAITS = {ord("c"): "concurrency", ord("r"): "rate"}
_CODES = {ord("1"): 1, ord("-"): -1}


def verdicts(reply: Sequence[Any]) -> Verdicts:
    """`job_admit`'s reply, per job in the order asked: (1, 0, "") admitted, (0, ms until
    due, "concurrency" or "rate") put back to wait, (-1, 0, "") not held (stale)."""
    codes, dues = reply[0], iter(reply[1:])
    found: Verdicts = []
    for code in codes.encode() if isinstance(codes, str) else codes:
        why = _WAITS.get(code)
        found.append((0, int(next(dues)), why) if why else (_CODES[code], 0, ""))
    return found


def limits_of(cap: int, slots: Limit, rate: Rate | None, log: Limit) -> Limits:
    """A job's limits as `Admission.add` takes them: `cap` (0: none) counted in `slots`,
    `rate` (None: none) in `log`."""
    if rate is None:
        return (cap, slots if cap else None, 0, 1000, None)
    return (cap, slots if cap else None, rate.count, rate.period_ms, log)


def release_call(queue: str, releases: Mapping[Limit, Sequence[str]]) -> Call:
    """One `job_slot_release` call giving back the slots of finished jobs of `queue` (by
    limit, the finished jobs' ids)."""
    keys, args = list(level_keys(queue)), []
    for limit, ids in releases.items():
        if not ids:
            continue
        keys += limit
        args += [len(ids), *ids]
    return keys, args


def extend_call(lease_ms: int, held: Mapping[Limit, Sequence[str]]) -> Call:
    """One `job_slot_extend` call: `held` maps a limit to the names of the slots held there."""
    keys: list[str] = []
    args: list[Any] = [lease_ms]
    for limit, names in held.items():
        keys += limit
        args += [len(names), *names]
    return keys, args
