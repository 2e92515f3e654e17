"""`redline dashboard`'s server stops without waiting on the pages' live streams."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from redline.cli.dashboard import dashboard_server
from redline.dashboard.settings import DashboardConfig
from tests.helpers import wait_for

WAIT = 60.0  # this test's own bound on each step; the server's graceful timeout is far longer


def test_the_stop_ends_an_open_live_stream_and_the_server(redis_url: str) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = DashboardConfig(redis=redis_url, port=port, sampleEvery=0.2)
    # Without its streams ended at the stop's start, uvicorn would wait for this one the whole
    # graceful timeout (it used to end only in the lifespan's stop, which runs after the wait).
    server = dashboard_server(config, graceful=3600)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=WAIT)
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http,
            http.stream("GET", "/live") as stream,
        ):
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"
            while next(lines) != "event: sample":  # the page is live: a new sample came
                pass
            server.should_exit = True  # what SIGTERM does
            deadline = time.monotonic() + WAIT
            for _ in lines:  # samples until the stream ends (httpx raises if it is cut)
                assert time.monotonic() < deadline, "the stream is still open"
        thread.join(WAIT)
        assert not thread.is_alive(), "the server is still stopping"
    finally:
        server.force_exit = True  # a failed test does not leave the server behind
        thread.join(WAIT)
