"""The Python peers of the jobs benchmark: each installed for the benchmark only, in its own
venv under ``~/.cache/redline/bench-venvs/<peer>`` (their redis-py ranges conflict), and run
by bench/peers/_jobs_peer.py in that venv (Dramatiq with 2 processes, Celery prefork with 2;
RQ, arq and SAQ as before, one process)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import venv
from pathlib import Path
from typing import Any

from bench._install import install_once
from bench._jobs_result import Result

HERE = Path(__file__).resolve().parent
# The peers run from their own folder: bench/ holds queue.py, which would shadow the stdlib
# module of that name on their sys.path.
PEER_DIR = HERE / "peers"
VENVS = Path.home() / ".cache" / "redline" / "bench-venvs"
PEERS = {
    "rq": ["rq>=2,<3"],
    "arq": ["arq==0.28.*", "redis<6"],  # arq 0.26 - 0.28 want redis-py < 6
    "saq": ["saq[hiredis]>=0.22,<1", "typing_extensions"],  # saq imports it, undeclared
    "dramatiq": ["dramatiq[redis]>=1.17,<2"],
    "celery": ["celery[redis]>=5.4,<6"],
}
SYSTEMS = ("dramatiq", "celery", "rq", "arq", "saq")
SLOW = ("rq", "arq", "saq")  # a few hundred jobs/s: they drain a fifth of the jobs
LABELS = {
    "dramatiq": "dramatiq (2 processes, 8 threads)",
    "celery": "celery (prefork, 2 processes)",
    "rq": "rq (SimpleWorker)",
    "arq": "arq (max_jobs 64)",
    "saq": "saq (64)",
}


def _peer_python(peer: str) -> Path | str:
    """The peer's venv python, made and installed on first use; a string says why it failed.

    The stamp file holds the requirements it was made with: a changed pin makes a new venv.
    """
    home = VENVS / peer
    python = home / "bin" / "python"
    command = [str(python), "-m", "pip", "install", "-q", *PEERS[peer], "redis", "hiredis"]
    prepare = functools.partial(venv.EnvBuilder(with_pip=True, clear=True).create, home)
    why = install_once(home / ".installed", "\n".join(PEERS[peer]), command, prepare, "pip install")
    return python if why is None else why


def _call(peer: str, url: str, *args: str) -> dict[str, Any] | str:
    """Run _jobs_peer.py in the peer's venv; its JSON, or why it failed."""
    python = _peer_python(peer)
    if isinstance(python, str):
        return python
    env = {**os.environ, "BENCH_PEER": peer, "BENCH_URL": url, "PYTHONPATH": str(PEER_DIR)}
    done = subprocess.run(
        [str(python), str(PEER_DIR / "_jobs_peer.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return f"run failed: {(done.stderr or done.stdout).strip()[-200:]}"
    if "error" in found:
        said = found.get("stderr", "").strip().splitlines()[-1:]
        return f"worker {found['error']}{': ' + said[0] if said else ''}"
    return found


def _version(peer: str) -> str:
    python = VENVS / peer / "bin" / "python"
    shown = subprocess.run([str(python), "-m", "pip", "show", peer], capture_output=True, text=True)
    return shown.stdout.split("Version: ")[-1].split()[0] if "Version: " in shown.stdout else "?"


def run(peer: str, url: str, n: int) -> Result:
    found = _call(peer, url, "drain", str(n))
    if isinstance(found, str):
        return Result(peer, note=found)
    label = LABELS[peer].replace(" (", f" {_version(peer)} (", 1)
    cmds = (found["enqueue_cmds"] / n, found["drain_cmds"] / n)
    return Result(label, n, n / found["enqueue"], found["drain"], *cmds)


def latency(peer: str, url: str, n: int, rate: float) -> tuple[float, float] | str:
    if peer not in ("dramatiq", "celery"):
        return "not measured (no latency task here)"
    found = _call(peer, url, "latency", str(n), repr(rate))
    return found if isinstance(found, str) else (found["p50"], found["p99"])
