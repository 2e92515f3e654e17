"""The cron parser and next-time computation (UTC)."""

from __future__ import annotations

import datetime as dt

import pytest

from redline.errors import JobError
from redline.jobs.cron import CronSchedule


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("* * * * *", "2026-01-01T00:00:30", "2026-01-01T00:01"),
        ("*/15 * * * *", "2026-01-01T00:16", "2026-01-01T00:30"),
        ("0 9 * * mon-fri", "2026-01-02T10:00", "2026-01-05T09:00"),  # Fri → Mon
        ("30 4 1,15 * *", "2026-01-02T00:00", "2026-01-15T04:30"),
        ("0 0 1 jan *", "2026-03-01T00:00", "2027-01-01T00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00", "2028-02-29T00:00"),
        ("0 12 13 * 5", "2026-02-01T00:00", "2026-02-06T12:00"),  # Friday OR the 13th
        ("0 0 * * 7", "2026-01-01T00:00", "2026-01-04T00:00"),  # 7 is Sunday
        ("5-10/5 * * * *", "2026-01-01T00:06", "2026-01-01T00:10"),
    ],
)
def test_next_after(expr: str, after: str, expected: str) -> None:
    assert CronSchedule.parse(expr).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute field: '60' is outside 0-59"),
        ("* * * foo *", "month field: 'foo' is not a number"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_bad_expressions_say_which_field(expr: str, match: str) -> None:
    with pytest.raises(JobError, match=match):
        CronSchedule.parse(expr).next_after(at("2026-01-01T00:00"))
