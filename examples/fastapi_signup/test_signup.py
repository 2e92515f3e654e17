"""The example app's tests, on redline's pytest plugin:
``pytest -p redline.testing -o asyncio_mode=auto examples/fastapi_signup/test_signup.py``.

`redline_url` is an empty database of the test's own on a server the plugin started;
`redline_jobs` says what was enqueued there and runs it here, retries included.
"""

from __future__ import annotations

import httpx

from examples.fastapi_signup.app import create_app
from examples.fastapi_signup.tasks import welcome
from redline.testing import Jobs


async def test_signup_enqueues_a_welcome_that_a_worker_runs(
    redline_url: str, redline_jobs: Jobs
) -> None:
    app = create_app(redline_url)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        reply = await http.post("/signup", params={"email": "ann@example.com"})
        assert reply.status_code == 202
        redline_jobs.assert_enqueued(welcome, "ann@example.com")

        [run] = await redline_jobs.run("signups")
        assert run.ok and run.result == "welcome, ann@example.com"
        state = await http.get(f"/jobs/{reply.json()['job']}")
        assert state.json() == {"state": "complete", "result": run.result, "error": ""}


async def test_a_bad_address_fails_every_retry(redline_url: str, redline_jobs: Jobs) -> None:
    app = create_app(redline_url)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        await http.post("/signup", params={"email": "nobody"})
    runs = await redline_jobs.run("signups")
    assert [(r.attempt, r.dead) for r in runs] == [(1, False), (2, False), (3, True)]
    assert runs[-1].error == "ValueError: not an e-mail address: 'nobody'"


def test_nothing_is_enqueued_without_a_signup(redline_jobs: Jobs) -> None:
    assert redline_jobs.enqueued("signups") == []
