"""The server a benchmark measures against: ``REDLINE_BENCH_URL`` when set (it is flushed),
else an embedded Valkey started for the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from redline.connection.embedded import EmbeddedServer


@contextmanager
def server() -> Iterator[str]:
    """The URL of the server to measure against, for the duration of the block."""
    url = os.environ.get("REDLINE_BENCH_URL")
    if url:
        yield url
        return
    with EmbeddedServer(port=None) as embedded:
        yield embedded.url
