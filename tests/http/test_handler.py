from __future__ import annotations

import json

import pytest

from redline.http.envelope import Request, Response
from redline.http.handler import HandlerSet, handler

routes = HandlerSet()


@handler(r"GET /hello/(?P<name>\w+)", into=routes)
async def hello(request: Request, name: str) -> str:
    return f"hello {name}"


@handler(r"POST,PUT /items/(?P<item>\d+)", into=routes)
def store(request: Request, item: str) -> tuple[int, dict[str, object]]:
    return 201, {"item": item, "size": len(request.body)}


@handler(r"/boom", into=routes)
def boom(request: Request) -> str:
    raise RuntimeError("kaput")


@handler(r"/raw", into=routes)
def raw(request: Request) -> Response:
    return Response.of("other-id", b"\x00\xff", "image/x-test", 202)


async def test_named_groups_become_arguments() -> None:
    response = await routes.respond(Request("1", "GET", "/hello/ann"))
    assert (response.id, response.status, response.body) == ("1", 200, b"hello ann")


async def test_methods_tuples_and_json() -> None:
    response = await routes.respond(Request("2", "PUT", "/items/7", body=b"abc"))
    assert response.status == 201
    assert json.loads(response.body) == {"item": "7", "size": 3}
    missing = await routes.respond(Request("3", "GET", "/items/7"))
    assert missing.status == 404


async def test_a_failing_handler_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    response = await routes.respond(Request("4", "GET", "/boom"))
    assert response.status == 500 and "kaput" in caplog.text


async def test_a_returned_response_gets_the_request_id() -> None:
    response = await routes.respond(Request("5", "GET", "/raw"))
    assert (response.id, response.status, response.body) == ("5", 202, b"\x00\xff")


def test_a_bad_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="not a regex"):
        handler("GET /(", into=HandlerSet())(boom)
