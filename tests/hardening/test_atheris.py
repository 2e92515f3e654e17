"""The atheris fuzz targets of fuzz/ (config loader, HTTP envelope decoder, rquery's parser),
each run briefly in its own process: libFuzzer stops at the first input that raises anything
but the parser's documented error, so exit status 0 means none did. ``make fuzz`` runs them
longer. Skipped where atheris has no wheel (it is installed on Linux x86_64, CPython < 3.14).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.support import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install atheris: wheels for Linux x86_64 only)",
)

# Inputs per target: the config loader writes a file per input, so it gets fewer.
RUNS = {"config": 3000, "envelope": 20000, "rquery": 20000}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            f"fuzz.{target}",
            f"-runs={RUNS[target]}",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0 and not crashes, f"{crashes}\n{done.stderr[-4000:]}"
    assert f"Done {RUNS[target]} runs" in done.stderr
