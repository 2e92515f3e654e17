"""What the jobs benchmark measures of one system (shared by bench/jobs.py and its helpers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    """One system's run: `enqueue` and `drain` in jobs/s, the commands per job of each, or
    `note` saying why it could not run."""

    name: str
    jobs: int = 0
    enqueue: float = 0.0
    drain: float = 0.0
    enqueue_cmds: float = 0.0
    drain_cmds: float = 0.0
    note: str = ""
