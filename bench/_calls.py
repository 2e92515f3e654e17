"""`PythonCalls`: the Python functions a piece of code calls, counted — the tests' bounds on
calls per push, pop and enqueue, and `python -m bench enqueue_cost`'s table."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import redline

__all__ = ["PythonCalls"]


class PythonCalls:
    """Counts the Python functions called while it is on (C functions not counted), those of
    redline's own modules apart: ``with PythonCalls() as calls: ...``, then ``calls.all`` and
    ``calls.redline``. A count, not a time: what a loaded machine does not change."""

    _ours = str(Path(redline.__file__).parent)

    def __init__(self) -> None:
        self.all = self.redline = 0
        self._collecting = False

    def _count(self, frame: Any, event: str, arg: object) -> None:
        if event == "call":
            self.all += 1
            self.redline += frame.f_code.co_filename.startswith(self._ours)

    def __enter__(self) -> PythonCalls:
        # The collector off while counting: a collection that lands inside would run the
        # finalizers (`__del__`) of whatever earlier tests left in cycles — calls of no path.
        self._collecting = gc.isenabled()
        gc.disable()
        sys.setprofile(self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        if self._collecting:
            gc.enable()
        self.all -= 1  # this call's own
