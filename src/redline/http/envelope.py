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
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from redline.errors import EnvelopeError

__all__ = ["VERSION", "Headers", "Request", "Response"]

VERSION = 1

Headers = tuple[tuple[str, str], ...]


def _headers(pairs: Iterable[Iterable[Any]]) -> Headers:
    out = []
    for pair in pairs:
        name, value = pair
        out.append((str(name).lower(), str(value)))
    return tuple(out)


def _first(headers: Headers, name: str) -> str | None:
    name = name.lower()
    for key, value in headers:
        if key == name:
            return value
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii") if data else ""


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"body must be a base64 string, got {type(text).__name__}")
    if text == "":  # most requests have no body
        return b""
    return base64.b64decode(text.encode("ascii"), validate=True)


def _load(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(
            f"{what}: not JSON ({exc}); expected the redline HTTP envelope"
        ) from None
    except RecursionError:  # hostile input: nesting deeper than the parser can follow
        raise EnvelopeError(f"{what}: JSON nested too deeply to be an envelope") from None
    if not isinstance(doc, dict):
        raise EnvelopeError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


@dataclass(frozen=True)
class Request:
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
    params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (case-insensitive), else `default`."""
        found = _first(self.headers, name)
        return default if found is None else found

    @property
    def host(self) -> str:
        """The Host header without its port ("" when absent)."""
        host = self.header("host") or ""
        return host.rsplit(":", 1)[0] if not host.endswith("]") else host

    @property
    def route_path(self) -> str:
        """The path percent-decoded, as routes see it."""
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
        # Not dataclasses.replace: it inspects the fields on every call (~10 % of hrouter).
        return Request(
            self.id,
            self.method,
            self.path,
            self.query,
            self.headers,
            self.body,
            self.client,
            self.deadline,
            self.reply,
            {**self.params, **params},
        )

    def encode(self) -> bytes:
        """The JSON envelope, as bytes for a queue."""
        doc = {
            "v": VERSION,
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": _b64(self.body),
            "client": self.client,
            "deadline": self.deadline,
            "reply": self.reply,
            "params": dict(self.params),
        }
        return orjson.dumps(doc)

    @classmethod
    def decode(cls, data: bytes | str) -> Request:
        """Parse an envelope; raises `EnvelopeError` naming what is wrong."""
        doc = _load(data, "request")
        try:
            return cls(
                id=str(doc["id"]),
                method=str(doc["method"]).upper(),
                path=str(doc["path"]),
                query=str(doc.get("query", "")),
                headers=_headers(doc.get("headers", ())),
                body=_unb64(doc.get("body", "")),
                client=str(doc.get("client", "")),
                deadline=float(doc.get("deadline", 0.0)),
                reply=str(doc.get("reply", "")),
                params={str(k): str(v) for k, v in dict(doc.get("params", {})).items()},
            )
        except KeyError as exc:
            raise EnvelopeError(f"request: field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError, OverflowError, binascii.Error) as exc:
            raise EnvelopeError(f"request: malformed field ({exc})") from None


@dataclass(frozen=True)
class Response:
    """An HTTP response on its way back to the importer that holds the connection."""

    id: str
    status: int = 200
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (case-insensitive), else `default`."""
        found = _first(self.headers, name)
        return default if found is None else found

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
        """The JSON envelope, as bytes for a reply list."""
        doc = {
            "v": VERSION,
            "id": self.id,
            "status": self.status,
            "headers": self.headers,
            "body": _b64(self.body),
        }
        return orjson.dumps(doc)

    @classmethod
    def decode(cls, data: bytes | str) -> Response:
        """Parse an envelope; raises `EnvelopeError` naming what is wrong."""
        doc = _load(data, "response")
        try:
            status = int(doc.get("status", 200))
            if not 100 <= status <= 599:
                raise ValueError(f"status {status} is not an HTTP status")
            return cls(
                id=str(doc["id"]),
                status=status,
                headers=_headers(doc.get("headers", ())),
                body=_unb64(doc.get("body", "")),
            )
        except KeyError as exc:
            raise EnvelopeError(f"response: field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError, OverflowError, binascii.Error) as exc:
            raise EnvelopeError(f"response: malformed field ({exc})") from None
