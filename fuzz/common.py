"""Shared by the atheris targets: structured JSON from the fuzzer's bytes, and the runner.

Random bytes are almost never a JSON object with the right field names, so each target takes
half of its inputs as raw bytes and half as `document`: a JSON object built from the bytes,
whose keys are mostly the parser's own field names, so the fuzzer reaches the checks behind
the JSON parse.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import atheris

SCALARS = 6  # kinds of leaf: null, bool, int, float, text, nested


def value(given: atheris.FuzzedDataProvider, fields: Sequence[str], depth: int = 0) -> Any:
    """A JSON value drawn from `given`; objects get their keys from `fields` mostly."""
    kind = given.ConsumeIntInRange(0, SCALARS + 1 if depth < 3 else SCALARS - 1)
    if kind == 0:
        return None
    if kind == 1:
        return given.ConsumeBool()
    if kind == 2:
        return given.ConsumeInt(8)
    if kind == 3:
        return given.ConsumeFloat()
    if kind in (4, 5):
        return given.ConsumeUnicode(given.ConsumeIntInRange(0, 40))
    if kind == 6:
        return [value(given, fields, depth + 1) for _ in range(given.ConsumeIntInRange(0, 4))]
    return document(given, fields, depth + 1)


def document(given: atheris.FuzzedDataProvider, fields: Sequence[str], depth: int = 0) -> Any:
    """A JSON object: up to 8 entries, keyed by one of `fields` or (rarely) any text."""
    doc: dict[str, Any] = {}
    for _ in range(given.ConsumeIntInRange(0, 8)):
        pick = given.ConsumeIntInRange(0, len(fields))
        key = fields[pick] if pick < len(fields) else given.ConsumeUnicode(8)
        doc[key] = value(given, fields, depth)
    return doc


def text_of(given: atheris.FuzzedDataProvider, fields: Sequence[str]) -> bytes:
    """Raw bytes or, as often, a JSON `document` (lone surrogates escaped, as JSON allows)."""
    if given.ConsumeBool():
        return given.ConsumeBytes(given.remaining_bytes())
    return json.dumps(document(given, fields)).encode()


def fuzz(one_input: Callable[[bytes], None]) -> None:
    """Hand `one_input` to libFuzzer with this process's arguments (``-runs=N`` and so on)."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
