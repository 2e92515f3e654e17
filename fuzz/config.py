"""The config loader: a JSON or TOML file plus ``--set`` overrides, as bytes from the fuzzer.

Allowed outcome: a validated config or `ConfigError` with one non-empty line per problem.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["redline"]):
    from redline.config import load_config
    from redline.errors import ConfigError
    from redline.services.mpush import MpushConfig

from fuzz.common import fuzz, text_of

WHERE = Path(tempfile.mkdtemp(prefix="redline-fuzz-"))
FIELDS = [f.alias or n for n, f in MpushConfig.model_fields.items()]


def one_input(data: bytes) -> None:
    given = atheris.FuzzedDataProvider(data)
    path = WHERE / ("config.toml" if given.ConsumeBool() else "config.json")
    sets = [given.ConsumeUnicodeNoSurrogates(24) for _ in range(given.ConsumeIntInRange(0, 3))]
    path.write_bytes(text_of(given, FIELDS))
    try:
        load_config(MpushConfig, path, {}, sets)
    except ConfigError as exc:
        if not exc.problems or not all(isinstance(p, str) and p for p in exc.problems):
            raise AssertionError(f"ConfigError without problems: {exc.problems!r}") from exc


if __name__ == "__main__":
    fuzz(one_input)
