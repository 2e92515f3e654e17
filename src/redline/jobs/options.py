"""The checks of the task options that priorities, limits, expiry and replacement add.

Kept apart from `redline.jobs.task` so the modules that use these options (`priority`,
`limits`, `placement`) do not import the task module, nor it them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from redline.errors import JobError

__all__ = ["MAX_PRIORITY", "Rate", "option_problems", "parse_rate"]

MAX_PRIORITY = 9
_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")


@dataclass(frozen=True)
class Rate:
    """At most `count` starts in any `period_ms` milliseconds."""

    count: int
    period_ms: int


def parse_rate(text: str) -> Rate:
    """``"100/s"``, ``"30/m"``, ``"1000/h"``, or with a number of units: ``"5/10s"``."""
    found = _RATE.match(text) if isinstance(text, str) else None
    if found is None or int(found[1]) < 1 or found[2] == "0":
        raise JobError(
            f"rate_limit {text!r} is not a rate: write COUNT/UNIT with COUNT >= 1 and UNIT one "
            "of s, m, h, optionally with a number of units (e.g. '100/s', '30/m', '5/10s')"
        )
    return Rate(int(found[1]), int(found[2] or 1) * _UNITS[found[3]])


def option_problems(t: Any) -> list[str]:
    """What is wrong with task `t`'s priority, limit, expiry and replacement options (a `Task`,
    not imported here: the task module imports this one)."""
    problems = []
    if not isinstance(t.priority, int) or not 0 <= t.priority <= MAX_PRIORITY:
        problems.append(f"priority={t.priority!r}: must be an integer from 0 to {MAX_PRIORITY}")
    if t.concurrency is not None and (not isinstance(t.concurrency, int) or t.concurrency < 1):
        problems.append(f"concurrency={t.concurrency!r}: must be an integer >= 1 or None")
    if t.concurrency_key is not None and t.concurrency is None:
        problems.append("concurrency_key needs concurrency=N (the cap per key)")
    if t.rate_limit is not None:
        parse_rate(t.rate_limit)  # raises, saying what a rate looks like
    if t.rate_key is not None and t.rate_limit is None:
        problems.append("rate_key needs rate_limit='N/s' (the limit per key)")
    if t.expires is not None and not t.expires > 0:
        problems.append(f"expires={t.expires!r}: must be seconds > 0 or None")
    if t.debounce is not None and not t.debounce > 0:
        problems.append(f"debounce={t.debounce!r}: must be seconds > 0 or None")
    if (t.replace or t.debounce is not None) and t.unique is False:
        problems.append("replace and debounce need unique= (the key of the job to replace)")
    return problems
