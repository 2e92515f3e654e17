"""Hostile HTTP input, fuzzed: the envelope decoder, and the himporter app (through httpx's ASGI
transport, with hrouter and a handler behind it on a real server). Always a clear error or an
answer with a real HTTP status; the app keeps serving."""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from redline.errors import EnvelopeError
from redline.http.envelope import Request, Response
from redline.http.handler import HandlerService, HandlerSet, handler
from redline.http.himporter import ImporterSettings, create_app
from redline.http.hrouter import Router, RouterConfig
from redline.http.worker import WorkerConfig
from redline.runtime import run_service
from tests.hardening.test_fuzz import json_values
from tests.servers import ServerProcess

echo = HandlerSet()


@handler(r"(?s)/.*", into=echo)
def answer(request) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    return 200, bytes(request.body)


envelope_fields = st.sampled_from(
    [
        "v",
        "id",
        "method",
        "path",
        "query",
        "headers",
        "body",
        "client",
        "deadline",
        "reply",
        "params",
        "status",
    ]
)
envelopes = st.dictionaries(envelope_fields, json_values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(envelopes.map(json.dumps) | st.binary(max_size=200) | json_values.map(json.dumps))
@example('{"id": "1", "method": "GET", "path": "/", "body": 5}')  # body not a string
@example('{"id": "1", "status": Infinity}')  # JSON's Infinity: not an integer status
@example('{"id": "1", "method": "GET", "path": "/", "headers": [[1, 2, 3]]}')
@example("[" * 5000)  # deeper than the JSON parser can follow
def test_envelopes_decode_or_say_why(data: str | bytes) -> None:
    for kind in (Request, Response):
        try:
            kind.decode(data)
        except EnvelopeError as exc:
            assert str(exc)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    srv = ServerProcess().start()
    yield srv.url
    srv.close()


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"]),
        "path": st.text(max_size=30),
        "query": st.text(max_size=20),
        "headers": st.dictionaries(
            st.text(alphabet=string.ascii_letters + "-", min_size=1, max_size=12),
            header_text,
            max_size=4,
        ),
        "body": st.binary(max_size=400),
    }
)


async def _serve(url: str, batch: list[dict[str, Any]]) -> list[int]:
    common = {"redis": url, "popTimeout": 0.2}
    routes = [{"path": "(?s).*", "queue": "fz:h"}]
    services = [
        Router(RouterConfig.model_validate({**common, "in": "fz:http", "routes": routes})),
        HandlerService(WorkerConfig.model_validate({**common, "in": "fz:h"}), echo),
    ]
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(run_service(s, s.config, s.hooks(), stopping=stopping))
        for s in services
    ]
    limits = {"out": "fz:http", "timeout": 5, "maxBody": 200, "maxHeader": 400}
    app = create_app(ImporterSettings.model_validate({**common, **limits}))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                statuses = [await _send(client, r) for r in batch]
                after = await client.post("/still/serving", content=b"ok")
                assert after.status_code == 200 and after.content == b"ok"
        return statuses
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


async def _send(client: httpx.AsyncClient, r: dict[str, Any]) -> int:
    path = "/" + r["path"].lstrip("/")
    response = await client.request(
        r["method"], path, params=r["query"] or None, headers=r["headers"], content=r["body"]
    )
    return response.status_code


def _sendable(r: dict[str, Any]) -> bool:
    try:
        httpx.Request(r["method"], "http://t/" + r["path"].lstrip("/"), headers=r["headers"])
    except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
        return False
    return True


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(requests, min_size=15, max_size=15))
@example(
    [
        {"method": "POST", "path": "big", "query": "", "headers": {}, "body": b"x" * 300},
        {"method": "GET", "path": "h", "query": "", "headers": {"x-h": "v" * 500}, "body": b""},
        {"method": "GET", "path": "%zz/\x00", "query": "a=%", "headers": {}, "body": b"\xff"},
    ]
)
def test_himporter_answers_every_request_and_keeps_serving(
    url: str, batch: list[dict[str, Any]]
) -> None:
    batch = [r for r in batch if _sendable(r)]
    assume(batch)
    statuses = asyncio.run(_serve(url, batch))
    # A real answer (the echo), or a clear client error: too large (413, 431), bad request.
    assert all(s in (200, 400, 404, 405, 413, 431) for s in statuses), statuses
