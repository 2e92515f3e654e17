"""`redline dashboard`, as a real process against a password-protected server, never shows a
secret: not the Redis password, not its own token or basic-auth password, in no page, JSON
endpoint, error page or header, and not in its log.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from redline.jobs.document import JobDocument, JobState, job_keys
from redline.queue import SyncReliableQueue
from tests.helpers import spawn, stop, wait_for
from tests.jobs import tasks as t
from tests.servers import ServerProcess, free_port

PASSWORD = "pw-Dash-9c1e"
TOKEN = "tok-Dash-4b7d"
BASIC = "basic-Dash-2e8f"
SECRETS = (PASSWORD, TOKEN, BASIC)
QUEUE, DONE = "{dash}:q", 3


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerProcess]:
    srv = ServerProcess(config={"requirepass": PASSWORD}).start()
    yield srv
    srv.close()


def _url(port: int, password: str = PASSWORD) -> str:
    return f"redis://default:{password}@127.0.0.1:{port}/0"


def _visible(response: httpx.Response) -> str:
    """Everything the dashboard sent: status line, headers and body."""
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
    return f"{response.status_code}\n{headers}\n{response.text}"


def _clean(text: str) -> str:
    for secret in SECRETS:
        encoded = base64.b64encode(secret.encode()).decode()
        assert secret not in text and encoded not in text, (secret, text[-3000:])
    return text


def _dashboard(url: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    sets = ["--set", "basicUser=admin", "--set", f"basicPassword={BASIC}"]
    sets += ["--set", "sampleEvery=0.2", "--set", f"namespaces={json.dumps(['dash:mpush'])}"]
    proc = spawn(
        "dashboard",
        "--redis",
        url,
        "--port",
        str(port),
        "--queue",
        QUEUE,
        *sets,
        env={"REDLINE_DASHBOARD_TOKEN": TOKEN},
        log=log,
    )
    return proc, f"http://127.0.0.1:{port}"


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/static/live.js", headers=_bearer()).status_code == 200
    except httpx.TransportError:
        return False


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _fill(guarded: ServerProcess, tmp_path: Path) -> list[subprocess.Popen[str]]:
    """A queue with waiting and dead messages, a worker with done and failed jobs, an mpush
    and a vpush (whose remote URL carries the password) registered as live services."""
    client = guarded.client(password=PASSWORD)
    queue = SyncReliableQueue(client)
    queue.push(QUEUE, b"waiting", b"doomed")
    for delivery in queue.pop(QUEUE, count=1):
        queue.dead_letter(delivery, reason="refused by the test")
    kept = {"queue": "t:jobs", "result_ttl": 60}  # complete jobs keep a record to show
    jobs = [JobDocument(t.shout.name, (f"hi{n}",), **kept).encode() for n in range(DONE)]
    client.lpush(
        "t:jobs", *jobs, JobDocument(t.always_fails.name, ("no",), queue="t:jobs").encode()
    )
    url, logs = _url(guarded.port), tmp_path
    mpush_sets = ["--set", "in={dash}:in", "--set", 'out=["{dash}:out"]']
    mpush_sets += ["--set", "serviceNamespace=dash:mpush"]
    vpush_sets = ["--set", "in={dash}:v", "--set", "out=dash:remote", "--set", f"outRedis={url}"]
    return [
        spawn("worker", "tests.jobs.tasks", "--redis", url, "-q", "t:jobs", log=logs / "w.log"),
        spawn("mpush", "--redis", url, *mpush_sets, log=logs / "mpush.log"),
        spawn("vpush", "--redis", url, *vpush_sets, log=logs / "vpush.log"),
    ]


def _settled(guarded: ServerProcess) -> bool:
    """Jobs done (and one dead), the three services registered."""
    client = guarded.client(password=PASSWORD)
    stats = client.hgetall(job_keys("t:jobs").stats)
    dead = SyncReliableQueue(client).info("t:jobs").dead
    services = client.hkeys("redline:registry")
    return int(stats.get(b"complete", 0)) == DONE and dead == 1 and len(services) >= 3


def _pages(http: httpx.Client) -> list[httpx.Response]:
    """Every page and endpoint, including the error pages (400, 401, 403, 404)."""
    q = QUEUE.replace("{", "%7B").replace("}", "%7D")
    got = [http.get(p) for p in ("/", "/api/queues", f"/queues/{q}", "/services", "/metrics")]
    got += [http.get(f"/queues/{q}", params={"list": k}) for k in ("inflight", "dead", "delayed")]
    got += [http.get("/jobs", params={"queue": "t:jobs", "state": s.value}) for s in JobState]
    got += [http.get("/jobs"), http.get("/jobs", params={"state": "nope"})]
    got += [http.get("/static/live.js"), http.get("/static/nope.css"), http.get("/nope")]
    got += [http.get("/", headers={"Authorization": h}) for h in ("", "Bearer x", "Basic !")]
    form = {"csrf": http.cookies.get("redline_csrf", "")}
    origin = {"Origin": str(http.base_url).rstrip("/")}
    got += [
        http.post(f"/queues/{q}/dead/retry", data={}, headers=origin),  # no CSRF token
        http.post(f"/queues/{q}/dead/retry", data=form, headers={"Origin": "http://evil"}),
        http.post(f"/queues/{q}/dead/explode", data=form, headers=origin),  # no such action
        http.post(f"/queues/{q}/dead/retry", data=form, headers=origin),  # works: 303
    ]
    return got


def test_dashboard_never_shows_a_secret(guarded: ServerProcess, tmp_path: Path) -> None:
    services = _fill(guarded, tmp_path)
    dash, base = _dashboard(_url(guarded.port), tmp_path / "dashboard.log")
    basic = httpx.BasicAuth("admin", BASIC)
    try:
        wait_for(lambda: _settled(guarded), timeout=60)
        wait_for(lambda: _up(base), timeout=30)
        with httpx.Client(base_url=base, headers=_bearer()) as http:
            wait_for(lambda: http.get("/api/queues").json()["samples"], timeout=20)
            responses = _pages(http)
        with httpx.Client(base_url=base, auth=basic) as http:
            responses.append(http.get("/services"))
    finally:
        stopped = [stop(p) for p in (dash, *services)]
    statuses = {r.status_code for r in responses}
    assert statuses >= {200, 303, 400, 401, 403, 404}, statuses
    for response in responses:
        _clean(_visible(response))
    shown = "".join(r.text for r in responses if r.status_code == 200)
    for expected in ("dash:remote", "default:***@", "refused by the test", "hi0", "refused: no"):
        assert expected in shown, expected  # the pages did show the data (masked)
    assert stopped == [-signal.SIGTERM, 0, 0, 0], stopped  # uvicorn re-raises the SIGTERM
    assert "redline dashboard at" in _clean((tmp_path / "dashboard.log").read_text())


def test_dashboard_errors_never_show_a_secret(guarded: ServerProcess, tmp_path: Path) -> None:
    """Wrong password, or no server at all: every page that reads Redis says it cannot (503),
    the log has the traceback, and neither says anything secret."""
    wrong = _url(guarded.port, PASSWORD + "x")
    for n, url in enumerate((wrong, _url(free_port()))):
        log = tmp_path / f"dashboard{n}.log"
        dash, base = _dashboard(url, log)
        try:
            wait_for(lambda b=base: _up(b), timeout=30)
            # One connection each (uvicorn dropped a kept-alive connection after a 500).
            pages = ("/", "/services", "/metrics", "/jobs", "/api/queues")
            responses = [httpx.get(base + p, headers=_bearer()) for p in pages]
        finally:
            assert stop(dash) == -signal.SIGTERM
        assert [r.status_code for r in responses] == [503, 503, 503, 503, 200]
        for response in responses:
            _clean(_visible(response))
        assert "Traceback" in _clean(log.read_text())
