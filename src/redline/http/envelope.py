"""The HTTP request and response messages that travel through Redis queues.

One format, documented here and in docs/web.md: a UTF-8 JSON object per message.

Request::

    {"v": 1, "id": "9f…", "method": "GET", "path": "/a%20b", "query": "x=1",
     "headers": [["host", "example.org"], ...], "body": "<base64>",
     "client": "127.0.0.1:51234", "deadline": 1718000000.25, "reply": "web:reply:ab12",
     "params": {"name": "ann"}}

Response::

    {"v": 1, "id": "9f…", "status": 200, "headers": [["content-type", "text/plain"]],
     "body": "<base64>"}

- ``path`` is the path exactly as it came on the wire (still percent-encoded); `Request.route_path`
  is the decoded form routes match against.
- ``headers`` keeps order and repeats; names are lower-case; names and values are the wire bytes
  decoded as latin-1, so every byte survives.
- ``body`` is standard base64 (binary-safe; empty string for no body).
- ``deadline`` is a Unix time in seconds: past it nobody waits for the answer any more.
- ``reply`` is the plain Redis list the answer is LPUSHed onto; ``params`` are the named groups
  routing found (hrouter adds them; the importer sends ``{}``).
- Field order does not matter; types are strict (a number where a string belongs is refused with
  the field's JSON path); unknown fields are ignored. Decoding and validation are msgspec's
  (typed structs), about ten times faster than building the objects by hand, which matters
  because every request is decoded and encoded three times on its way.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, cast

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import force_setattr

from redline.errors import EnvelopeError

__all__ = ["VERSION", "Headers", "Request", "Response", "keep_body"]

VERSION = 1

Headers = tuple[tuple[str, str], ...]
Status = Annotated[int, Meta(ge=100, le=599)]


def _headers(pairs: Iterable[Iterable[Any]]) -> Headers:
    out = []
    for pair in pairs:
        name, value = pair
        out.append((str(name).lower(), str(value)))
    return tuple(out)


class _HeaderLookup:
    """What requests and responses share: header lookup, and lower-case names after decoding."""

    __slots__ = ()
    headers: Headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (case-insensitive), else `default`."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def __post_init__(self) -> None:
        """Header names lower-cased."""
        # A plain loop, and `islower` (no new string): every envelope decoded comes through
        # here. A name without letters is not `islower`; lowering it changes nothing.
        for name, _ in self.headers:
            if not name.islower():
                lowered = tuple((name.lower(), value) for name, value in self.headers)
                force_setattr(cast(Struct, self), "headers", lowered)
                return


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str, what: str) -> Any:
    """Decode and validate one envelope; every failure becomes an `EnvelopeError` that names
    the field and what was expected."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:  # valid JSON, not a valid envelope
        raise EnvelopeError(f"{what}: malformed envelope: {exc}") from None
    except msgspec.DecodeError as exc:
        raise EnvelopeError(
            f"{what}: not JSON ({exc}); expected the redline HTTP envelope"
        ) from None
    except RecursionError:  # hostile input: nesting deeper than the parser can follow
        raise EnvelopeError(f"{what}: JSON nested too deeply to be an envelope") from None


class Request(_HeaderLookup, Struct, frozen=True):
    """An HTTP request on its way to a handler."""

    id: str
    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes = b""
    client: str = ""
    deadline: float = 0.0
    reply: str = ""
    params: dict[str, str] = {}
    v: int = VERSION

    def __post_init__(self) -> None:
        if not self.method.isupper():
            force_setattr(self, "method", self.method.upper())
        super().__post_init__()

    @property
    def host(self) -> str:
        """The Host header without its port ("" when absent)."""
        host = self.header("host") or ""
        return host.rsplit(":", 1)[0] if not host.endswith("]") else host

    @property
    def route_path(self) -> str:
        """The path percent-decoded, as routes see it."""
        if "%" not in self.path:
            return self.path
        return urllib.parse.unquote(self.path, errors="replace")

    @property
    def query_params(self) -> dict[str, str]:
        """The query string as a dict (the last value of a repeated name wins)."""
        return dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))

    def expired(self, now: float | None = None) -> bool:
        """True when nobody waits for the answer any more."""
        return bool(self.deadline) and (now or time.time()) > self.deadline

    def with_params(self, params: Mapping[str, str]) -> Request:
        """A copy carrying `params` (named groups found by routing) besides its own."""
        if not params:
            return self
        # A copy, then the one field set: `replace` would run __post_init__ (its checks) again.
        # (`__copy__` itself: `copy.copy` looks it up through three calls first.)
        copied: Request = self.__copy__()  # type: ignore[attr-defined]  # (not in the stubs)
        force_setattr(copied, "params", {**self.params, **params})
        return copied

    def encode(self) -> bytes:
        """The JSON envelope, as bytes for a queue."""
        return _ENCODER.encode(self)

    @classmethod
    def decode(cls, data: bytes | str) -> Request:
        """Parse an envelope; raises `EnvelopeError` naming what is wrong."""
        request: Request = _decode(_REQUESTS, data, "request")
        return request


class Response(_HeaderLookup, Struct, frozen=True):
    """An HTTP response on its way back to the importer that holds the connection."""

    id: str
    status: Status = 200
    headers: Headers = ()
    body: bytes = b""
    v: int = VERSION

    def __post_init__(self) -> None:
        # The answers of one file, or of one route, repeat their header set: one seen before
        # (its names lower-case, or lowered then) is known by one set lookup, not a check per
        # name. A set with a name in capitals is never remembered, only its lowered form.
        if self.headers not in _LOWERED:
            super().__post_init__()
            if len(_LOWERED) >= LOWERED_KEPT:
                _LOWERED.clear()
            _LOWERED.add(self.headers)

    @classmethod
    def text(cls, request_id: str, text: str, status: int = 200, **kw: Any) -> Response:
        """A text/plain UTF-8 response."""
        return cls.of(request_id, text.encode(), "text/plain; charset=utf-8", status, **kw)

    @classmethod
    def html(cls, request_id: str, html: str, status: int = 200, **kw: Any) -> Response:
        """A text/html UTF-8 response."""
        return cls.of(request_id, html.encode(), "text/html; charset=utf-8", status, **kw)

    @classmethod
    def json(cls, request_id: str, value: Any, status: int = 200, **kw: Any) -> Response:
        """A JSON response."""
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls.of(request_id, body, "application/json", status, **kw)

    @classmethod
    def of(
        cls,
        request_id: str,
        body: bytes,
        content_type: str,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A response with `body` of `content_type` and any extra headers."""
        return cls(request_id, status, (("content-type", content_type), *_headers(headers)), body)

    def encode(self) -> bytes:
        """The JSON envelope, as bytes for a reply list (a body given to `keep_body` is not
        encoded again)."""
        kept = _BODIES.get(id(self.body))
        if kept is None:
            return _ENCODER.encode(self)
        return _ENCODER.encode(_KeptResponse(self.id, self.status, self.headers, kept[1], self.v))

    @classmethod
    def decode(cls, data: bytes | str) -> Response:
        """Parse an envelope; raises `EnvelopeError` naming what is wrong."""
        response: Response = _decode(_RESPONSES, data, "response")
        return response


class _KeptResponse(Struct, frozen=True):
    """A `Response` as encoded with a kept body: the same fields in the same order (so the same
    JSON), the body's JSON (its base64 string) made once by `keep_body`."""

    id: str
    status: int
    headers: Headers
    body: msgspec.Raw
    v: int


# id(body) -> (body, its JSON). Holding the body keeps its id from being reused by another
# object, so an id found here is that very body.
_BODIES: dict[int, tuple[bytes, msgspec.Raw]] = {}
BODIES_KEPT = 512  # bodies remembered (hassets keeps as many files' bytes)


def keep_body(body: bytes) -> None:
    """Encode `body` for the envelope (base64, as a JSON string) now, once, and reuse that
    whenever a `Response` whose body is this very object is encoded: for bytes answered again
    and again, such as hassets' kept files (base64 was a quarter of hassets' instructions per
    request for a 1 KiB file). At most ``BODIES_KEPT`` bodies are remembered."""
    if len(_BODIES) >= BODIES_KEPT:
        _BODIES.clear()
    _BODIES[id(body)] = (body, msgspec.Raw(_ENCODER.encode(body)))


_LOWERED: set[Headers] = set()  # response header sets whose names are all lower-case
LOWERED_KEPT = 1024  # distinct sets remembered (as `front`'s header lines)

_ENCODER = msgspec.json.Encoder()
_REQUESTS = msgspec.json.Decoder(Request)
_RESPONSES = msgspec.json.Decoder(Response)
