"""The HTTP envelope decoder (`Request.decode`, `Response.decode`) on raw bytes.

Allowed outcome: an envelope that encodes and decodes back to itself, or `EnvelopeError`.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["redline"]):
    from redline.errors import EnvelopeError
    from redline.http.envelope import Request, Response

from fuzz.common import fuzz, text_of

# The envelopes' wire fields (docs/web.md), requests' and responses' together.
FIELDS = ["v", "id", "method", "path", "query", "headers", "body", "client", "deadline"]
FIELDS += ["reply", "params", "status"]


def one_input(data: bytes) -> None:
    data = text_of(atheris.FuzzedDataProvider(data), FIELDS)
    for kind in (Request, Response):
        try:
            decoded = kind.decode(data)
        except EnvelopeError as exc:
            if not str(exc):
                raise AssertionError("EnvelopeError without a message") from exc
            continue
        again = kind.decode(decoded.encode())
        if again != decoded:
            raise AssertionError(f"{kind.__name__} round trip changed it: {decoded!r} {again!r}")


if __name__ == "__main__":
    fuzz(one_input)
