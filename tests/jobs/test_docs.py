"""docs/jobs.md's first example runs as written: its `app/tasks.py` under a real `redline
worker`, and its enqueue snippet (every call in it) against the same server."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import redis

from tests.helpers import spawn, stop, wait_for

ROOT = Path(__file__).parents[2]


def _snippets() -> list[str]:
    page = (ROOT / "docs" / "jobs.md").read_text()
    return re.findall(r"```python\n(.*?)```", page, re.S)[:2]


def test_the_first_example_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    tasks, calls = _snippets()
    assert tasks.startswith("# app/tasks.py")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "tasks.py").write_text(tasks.replace("    ...\n", "    pass\n"))
    calls = calls.replace("redis://127.0.0.1:6379/0", redis_url)
    # Its result's 10 s bound a job's run, not a worker's start on a loaded machine: the
    # snippet runs once the worker is registered, and waits longer for the run all the same.
    calls = calls.replace("result(timeout=10)", "result(timeout=60)")
    script = tmp_path / "calls.py"  # its top-level awaits, in the function they stand for
    body = textwrap.indent(calls, "    ")
    script.write_text(f"import asyncio\n\nasync def main():\n{body}\n\nasyncio.run(main())\n")
    log = tmp_path / "worker.log"
    args = ("worker", "app.tasks", "--processes", "1", "--redis", redis_url)
    worker = spawn(*args, log=log, cwd=tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: client.llen("redline:worker:ids"), timeout=60)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr + log.read_text()[-2000:]
    finally:
        assert stop(worker) == 0, log.read_text()[-2000:]
