"""Running Ruby's Sidekiq and `redline worker --sidekiq` beside each other in tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import spawn

RUBY = Path(__file__).parent / "ruby"

needs_sidekiq = pytest.mark.skipif(
    shutil.which("sidekiq") is None or shutil.which("ruby") is None,
    reason="needs Ruby's Sidekiq (apt-get install ruby-sidekiq)",
)


def ruby(script: str, url: str, *args: str, timeout: float = 120) -> Any:
    """Run ``ruby/<script>`` against the database at `url`; its JSON output, parsed."""
    done = subprocess.run(
        ["ruby", str(RUBY / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "REDIS_URL": url},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_sidekiq(url: str, log: Path, *queues: str) -> subprocess.Popen[str]:
    """A real Ruby Sidekiq process running ruby/worker.rb's HardWorker."""
    flags = [arg for name in queues or ("default",) for arg in ("-q", name)]
    with open(log, "a") as out:
        return subprocess.Popen(
            ["sidekiq", "-r", str(RUBY / "worker.rb"), "-c", "10", "-t", "5", *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "REDIS_URL": url},
        )


def start_worker(url: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    """`redline worker tests.jobs.sidekiq.tasks --sidekiq`, with short heartbeats."""
    return spawn(
        "worker",
        "tests.jobs.sidekiq.tasks",
        "--sidekiq",
        "--redis",
        url,
        "--set",
        "beat=0.5",
        "--set",
        "processExpire=3",
        "--set",
        "pollInterval=0.3",
        "--set",
        "popTimeout=0.5",
        "--set",
        "grace=1",
        *extra,
        log=log,
        env={"REDLINE_TEST_URL": url},
    )
