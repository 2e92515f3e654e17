"""rquery's declaration parser: `parse_query` on raw bytes, then each step's parameters
substituted and checked against a policy, as the service does before it sends anything.

Allowed outcome: a checked query or `QueryError` with a code and a message.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["redline"]):
    from redline.errors import QueryError
    from redline.rquery.query import READ_ONLY, Policy, check_step, parse_query, substitute

from fuzz.common import fuzz, text_of

POLICIES = (Policy(), Policy(READ_ONLY, ("q",), max_commands=3))


FIELDS = ["parameters", "commands", "command", "save", "p", "q"]


def one_input(data: bytes) -> None:
    data = text_of(atheris.FuzzedDataProvider(data), FIELDS)
    for policy in POLICIES:
        try:
            query = parse_query(data, policy)
            for step in query.steps:
                check_step([substitute(word, query.parameters) for word in step.words], policy)
        except QueryError as exc:
            if not exc.code or not str(exc):
                raise AssertionError(f"QueryError without code or message: {exc!r}") from exc


if __name__ == "__main__":
    fuzz(one_input)
