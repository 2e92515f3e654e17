from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from redline.errors import EnvelopeError
from redline.http.envelope import (
    _BODIES,
    _LOWERED,
    BODIES_KEPT,
    LOWERED_KEPT,
    Request,
    Response,
    keep_body,
)

latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20)
headers = st.lists(st.tuples(latin1.map(str.lower), latin1), max_size=5).map(tuple)


@given(body=st.binary(max_size=300), hdrs=headers, path=st.text(max_size=30))
def test_request_round_trips_any_body_and_headers(body: bytes, hdrs, path: str) -> None:  # type: ignore[no-untyped-def]
    request = Request(
        id="r1",
        method="POST",
        path=path,
        query="a=1&b=%20",
        headers=hdrs,
        body=body,
        client="127.0.0.1:5000",
        deadline=1718000000.25,
        reply="web:reply:x",
        params={"name": "ann"},
    )
    assert Request.decode(request.encode()) == request


@given(body=st.binary(max_size=300), hdrs=headers, status=st.integers(100, 599))
def test_response_round_trips(body: bytes, hdrs, status: int) -> None:  # type: ignore[no-untyped-def]
    response = Response("r1", status, hdrs, body)
    assert Response.decode(response.encode()) == response


def test_header_lookup_is_case_insensitive_and_keeps_repeats() -> None:
    request = Request.decode(
        Request("1", "get", "/", headers=(("Set-Thing", "a"), ("set-thing", "b"))).encode()
    )
    assert request.method == "GET"
    assert request.header("SET-THING") == "a"
    assert [v for k, v in request.headers if k == "set-thing"] == ["a", "b"]


def test_route_path_and_host() -> None:
    request = Request("1", "GET", "/a%20b/%2e%2e", headers=(("host", "example.org:8080"),))
    assert request.route_path == "/a b/.."
    assert request.host == "example.org"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not json", "not JSON"),
        (b"[1]", "Expected `object`, got `array`"),
        (b'{"method": "GET", "path": "/"}', "missing required field `id`"),
        (b'{"id": "1", "method": "GET", "path": "/", "body": "!!"}', "base64.*body"),
        (b'{"id": 7, "method": "GET", "path": "/"}', "Expected `str`, got `int` - at `[$][.]id`"),
    ],
)
def test_bad_request_envelopes_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Request.decode(data)


def test_bad_status_is_refused() -> None:
    with pytest.raises(EnvelopeError, match=r"Expected `int` >= 100 - at `\$\.status`"):
        Response.decode(b'{"id": "1", "status": 42}')


def test_helpers_set_content_type() -> None:
    assert Response.json("1", {"a": 1}).header("content-type") == "application/json"
    assert Response.text("1", "hi").body == b"hi"
    assert Response.html("1", "<p>").header("Content-Type") == "text/html; charset=utf-8"


def test_a_responses_header_names_are_lower_case_whether_its_set_was_seen_or_not() -> None:
    lower = (("content-type", "text/plain"), ("etag", '"1"'))
    raw = b'{"id": "a", "headers": [["Content-Type", "text/plain"], ["ETag", "\\"1\\""]]}'
    for _ in range(2):  # the second time round, both sets have been seen
        assert Response("a", 200, lower).headers == lower
        assert Response.decode(raw).headers == lower
        assert Response("a", 200, (("ETag", '"1"'),)).headers == (("etag", '"1"'),)
    for n in range(LOWERED_KEPT + 5):  # the memory stays bounded
        Response("a", 200, (("x-n", str(n)),))
    assert len(_LOWERED) <= LOWERED_KEPT


def test_a_kept_body_is_encoded_once_and_its_responses_encode_as_any_other() -> None:
    body = bytes(range(256)) * 4
    keep_body(body)
    headers = (("content-type", "application/octet-stream"), ("content-length", "1024"))
    kept = Response("r1", 200, headers, body)
    assert kept.encode() == msgspec.json.encode(kept)  # the same bytes as encoding it whole
    assert Response.decode(kept.encode()) == kept
    # What goes out is the JSON made at keep_body, not a new encoding of the body.
    _BODIES[id(body)] = (body, msgspec.Raw(b'"AAAA"'))
    assert Response.decode(kept.encode()).body == b"\x00\x00\x00"
    equal = bytes(bytearray(body))  # an equal body, another object: encoded as usual
    assert Response("r1", 200, headers, equal).encode() == msgspec.json.encode(kept)
    for n in range(BODIES_KEPT + 5):  # the memory stays bounded
        keep_body(bytes([n % 256]) * 3)
    assert len(_BODIES) <= BODIES_KEPT
