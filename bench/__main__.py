"""Run every benchmark module in this package (or the ones named) and print their tables.

A benchmark is a module ``bench/<name>.py`` with a ``main() -> None`` that measures redline and
its comparisons (the raw Redis ceiling, peer tools) in the same run and prints one table.

    python -m bench [NAME ...]            run them (all when none is named)
    python -m bench [NAME ...] --help     what each measures and the settings it reads
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def explain(wanted: list[str]) -> None:
    """This usage, then the docstring of each benchmark in `wanted`."""
    print(f"{(__doc__ or '').strip()}\n\nbenchmarks: {', '.join(names())}")
    for name in wanted:
        doc = importlib.import_module(f"bench.{name}").__doc__ or "(no description)"
        print(f"\n== {name} ==\n{doc.strip()}")


def main(argv: list[str]) -> int:
    asked = {"-h", "--help"} & set(argv)
    wanted = [a for a in argv if a not in asked] or ([] if asked else names())
    unknown = sorted(set(wanted) - set(names()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names())}")
        return 2
    if asked:
        explain(wanted)
        return 0
    for name in wanted:
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
