"""The README's queue example and docs/queue.md's redis-cli session run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from redline.connection import connect_sync
from redline.queue import SyncReliableQueue
from tests.conftest import needs_tool

ROOT = Path(__file__).parents[2]


def test_the_readme_example_runs(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Reliable queues") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    exec(code.group(1).replace("redis://127.0.0.1:6379/0", redis_url), {})
    assert capsys.readouterr().out == "1 b'order 1'\n2 b'order 2'\n"


@needs_tool("redis-cli", "redis-tools")
def test_the_redis_cli_session_runs(redis_url: str) -> None:
    SyncReliableQueue(connect_sync(redis_url)).info("warm")  # loads the library
    port, db = re.findall(r":(\d+)/(\d+)$", redis_url)[0]
    doc = (ROOT / "docs" / "queue.md").read_text()
    session = re.search(r"```console\n(\$ redis-cli .*?)```", doc, re.S)
    assert session is not None
    names: dict[str, str] = {}  # a batch's name in the doc -> in this run (the server's ms)
    for block in session.group(1).split("$ redis-cli ")[1:]:
        command, _, expected = block.partition("\n")
        args = ["redis-cli", "-p", port, "-n", db, *[names.get(a, a) for a in shlex.split(command)]]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.split()
        for i, (doc, got) in enumerate(zip(expected.split(), out, strict=False)):
            if BATCH.fullmatch(doc) and BATCH.fullmatch(got):
                out[i] = doc if names.setdefault(doc, got) == got else got
        assert out == expected.split(), command


BATCH = re.compile(r"b\d{13}(-\d+)?")
