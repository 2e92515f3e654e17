"""What the hardening tests share: actor processes and reading what they recorded."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def actor(*args: str, log: Path) -> subprocess.Popen[str]:
    """Start ``python -m tests.hardening.actors ARGS…`` as a real process, output to `log`."""
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.hardening.actors", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )


def recorded(path: Path) -> Counter[str]:
    """The payloads a producer or consumer wrote to `path` (complete lines only)."""
    if not path.exists():
        return Counter()
    text = path.read_text()
    return Counter(text[: text.rfind("\n") + 1].splitlines())


def log_lines(path: Path, needle: str) -> list[str]:
    """The lines of log `path` that contain `needle`."""
    return [line for line in path.read_text().splitlines() if needle in line]
