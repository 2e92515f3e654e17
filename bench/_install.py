"""A peer of a benchmark installed on first use, outside the project (its own venv or npm
prefix), with a stamp file that remembers what was installed: a changed pin installs again."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path


def install_once(
    stamp: Path, wanted: str, command: list[str], prepare: Callable[[], object], what: str
) -> str | None:
    """Unless `stamp` holds `wanted`: `prepare()` the place, run the installer `command` and
    write the stamp. None when ready, else why it failed (``<what> failed: …``)."""
    if stamp.exists() and stamp.read_text() == wanted:
        return None
    prepare()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"{what} failed: {done.stderr.strip().splitlines()[-1:]}"
    stamp.write_text(wanted)
    return None
