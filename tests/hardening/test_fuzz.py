"""Hostile input, fuzzed with hypothesis: a clear redline error or a result, never a crash."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redline.config import load_config
from redline.connection import connect
from redline.errors import ConfigError, QueryError
from redline.queue import QueueKeys, ReliableQueue
from redline.rquery.query import READ_ONLY, Policy, parse_query, run_query
from redline.services.mpush import MpushConfig
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A server of this module's own (each example uses a fresh connection to it)."""
    srv = ServerProcess().start()
    yield srv.url
    srv.close()


FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
fields = st.sampled_from(
    ["redis", "in", "out", "popTimeout", "batch", "serviceRedis", "serviceExpire", "done", "x"]
)
documents = st.dictionaries(fields | st.text(max_size=10), json_values, max_size=6)


def _load(suffix: str, content: bytes, sets: tuple[str, ...] = ()) -> None:
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / f"config{suffix}"
        path.write_bytes(content)
        try:
            config = load_config(MpushConfig, path, {}, sets)
        except ConfigError as exc:
            assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        else:
            assert isinstance(config, MpushConfig)


@FAST
@given(documents | json_values)
def test_config_json_documents(document: Any) -> None:
    _load(".json", json.dumps(document).encode())


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b"[" * 5000)  # nesting deeper than the parser's recursion limit
@example(b"\xff\xfe not UTF-8")
@example(b'in = "q"\nout = ["a"]\n')
def test_config_raw_files(content: bytes) -> None:
    _load(".json", content)
    _load(".toml", content)


@FAST
@given(st.lists(st.text(max_size=40), max_size=5))
def test_config_set_overrides(sets: list[str]) -> None:
    _load(".json", b'{"in": "q", "out": ["a"]}', tuple(sets))


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300) | json_values.map(json.dumps))
@example('{"commands": [{"command": "get \\ud800"}]}')  # a lone surrogate: not encodable
@example("[" * 5000)
def test_rquery_documents_parse_or_say_why(document: str | bytes) -> None:
    try:
        parse_query(document)
    except QueryError as exc:
        assert exc.code and str(exc)


words = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["$p", "${p}", "$$", "$", "$nope", "1", "2", "²", "-1", "q", "0"]
)
steps = st.builds(
    lambda name, args, save: {"command": " ".join([name, *map(json.dumps, args)]), "save": save},
    st.sampled_from(sorted(READ_ONLY)),
    st.lists(words, max_size=4),
    st.none() | st.sampled_from(["p", "r"]),
)
queries = st.fixed_dictionaries(
    {"parameters": st.fixed_dictionaries({"p": st.text(max_size=8) | st.integers()})},
    optional={"commands": st.lists(steps, min_size=1, max_size=4)},
)


@FAST
@given(queries, st.booleans())
@example({"parameters": {"p": "k"}, "commands": [{"command": 'eval "return 1" ² k'}]}, True)
@example({"parameters": {"p": "k"}, "commands": [{"command": "sintercard ² q"}]}, True)
@example({"parameters": {"p": "\ud800"}, "commands": [{"command": "get q$p"}]}, False)
def test_rquery_runs_or_says_why(url: str, query: dict[str, Any], prefixed: bool) -> None:
    policy = Policy(READ_ONLY, ("q",) if prefixed else ())

    async def go() -> None:
        client = connect(url)
        try:
            reply = await run_query(client, parse_query(query, policy), policy)
            json.dumps(reply)  # a reply is always JSON-ready
        except QueryError as exc:
            assert exc.code and str(exc)
        finally:
            await client.aclose()

    asyncio.run(go())


@settings(FAST, max_examples=60)
@given(st.lists(st.binary(max_size=64) | st.text(max_size=16), max_size=30))
def test_queue_carries_any_payload(url: str, payloads: list[bytes | str]) -> None:
    async def go() -> None:
        client = connect(url)
        queue = ReliableQueue(client)
        await client.delete(*dataclasses.astuple(QueueKeys.of("fz")))
        await queue.push("fz", *payloads)
        got = await queue.pop("fz", count=len(payloads) + 1)
        assert len(await queue.ack(*got)) == len(got)
        expected = [p.encode() if isinstance(p, str) else p for p in payloads]
        assert [d.payload for d in got] == expected
        await client.aclose()

    asyncio.run(go())
