"""Charts drawn on the server as SVG: geometry here, markup in ``templates/_charts.html``.

- `hour_charts`: throughput (jobs completed a minute, per queue) and latency (mean of each
  metric over each minute) over the last hour, from the one-a-minute samples `Live` keeps.
- `histogram`: a metric's histogram of tenths of its timeout, with the timeout line.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chart", "histogram", "hour_charts"]

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 16, 46  # margins: axis labels live in them
COLOURS = ("#b3261e", "#1a5fb4", "#26783a", "#a15c00", "#6a3d9a", "#00727d")


@dataclass
class Chart:
    """One chart: axes (ticks as (position, label)), lines or bars, and marks (the timeout)."""

    title: str
    x_label: str
    y_label: str
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: float = HEIGHT - BOTTOM
    right: float = WIDTH - RIGHT


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^n at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value))


def _y(chart: Chart, value: float, top: float) -> float:
    return round(chart.bottom - (chart.bottom - chart.top) * value / top, 1)


def _y_axis(chart: Chart, top: float) -> None:
    chart.y_ticks = [(_y(chart, top * i / 4, top), f"{top * i / 4:g}") for i in range(5)]


def _line_chart(
    title: str, y_label: str, series: dict[str, list[tuple[float, float]]], now: float
) -> Chart:
    chart = Chart(title, "minutes ago", y_label)
    top = nice_top(max((y for points in series.values() for _, y in points), default=0))
    _y_axis(chart, top)
    span = chart.right - chart.left

    def x(t: float) -> float:
        return round(chart.left + span * (1 - min(3600.0, now - t) / 3600), 1)

    chart.x_ticks = [(x(now - m * 60), str(m)) for m in (60, 45, 30, 15, 0)]
    for i, (name, points) in enumerate(sorted(series.items())):
        dots = [(x(t), _y(chart, y, top), y) for t, y in points]
        path = " ".join(f"{dx},{dy}" for dx, dy, _ in dots)
        colour = COLOURS[i % len(COLOURS)]
        chart.lines.append({"name": name, "points": path, "dots": dots, "colour": colour})
    return chart


def _deltas(
    hour: list[dict[str, Any]],
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    done: dict[str, list[tuple[float, float]]] = {}
    latency: dict[str, list[tuple[float, float]]] = {}
    for before, after in itertools.pairwise(hour):
        minutes = max(1e-9, (after["t"] - before["t"]) / 60)
        was = {q["name"]: q for q in before["queues"]}
        for q in after["queues"]:
            if q["name"] in was:
                rate = max(0, q["complete"] - was[q["name"]]["complete"]) / minutes
                done.setdefault(q["name"], []).append((after["t"], rate))
        for key, (count, total) in after["metrics"].items():
            prior = before["metrics"].get(key, [0, 0])
            if count > prior[0]:
                latency.setdefault(key, []).append(
                    (after["t"], (total - prior[1]) / (count - prior[0]))
                )
    return done, latency


def hour_charts(hour: list[dict[str, Any]]) -> list[Chart]:
    """Throughput and latency over the last hour (empty until two minutes were sampled)."""
    if len(hour) < 2:
        return []
    done, latency = _deltas(hour)
    now = hour[-1]["t"]
    return [
        _line_chart("Throughput: jobs completed a minute", "jobs / minute", done, now),
        _line_chart(
            "Latency: mean of each metric over each minute", "mean (metric's unit)", latency, now
        ),
    ]


def histogram(key: str, bins: list[tuple[str, int]]) -> Chart:
    """Bars for ``histo10`` … ``histo100`` and ``above``; the timeout line between the last two."""
    chart = Chart(f"{key}: durations against the timeout", "share of the timeout", "count")
    top = nice_top(max((n for _, n in bins), default=0))
    _y_axis(chart, top)
    slot = (chart.right - chart.left) / max(1, len(bins))
    for i, (name, n) in enumerate(bins):
        label = "over" if name == "above" else f"≤{name.removeprefix('histo')}%"
        x = chart.left + i * slot
        y = _y(chart, n, top)
        chart.bars.append(
            {
                "x": round(x + slot * 0.12, 1),
                "y": y,
                "w": round(slot * 0.76, 1),
                "h": round(chart.bottom - y, 1),
                "n": n,
                "label": label,
                "name": name,
            }
        )
        chart.x_ticks.append((round(x + slot / 2, 1), label))
    chart.marks = [(round(chart.left + (len(bins) - 1) * slot, 1), "timeout")]
    return chart
