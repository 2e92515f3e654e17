"""The example website under `redline up`, real processes, real HTTP: assets, pages, JSON."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import needs_tool
from tests.http.web import WEBSITE, fresh_db, raw_get, topology
from tests.servers import ServerProcess, free_port

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def site(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, log = free_port(), tmp_path_factory.mktemp("website") / "up.log"
    with topology(WEBSITE, fresh_db(server, 90), port, log, ("/", "/api/articles", "/hello/x")):
        yield f"http://127.0.0.1:{port}"


def test_static_file_with_type_etag_and_304(site: str) -> None:
    response = httpx.get(f"{site}/style.css")
    assert response.status_code == 200 and b"font-family" in response.content
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    again = httpx.get(f"{site}/style.css", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_range_and_head(site: str) -> None:
    whole = httpx.get(f"{site}/app.js").content
    part = httpx.get(f"{site}/app.js", headers={"range": "bytes=3-12"})
    assert part.status_code == 206 and part.content == whole[3:13]
    assert httpx.get(f"{site}/app.js", headers={"range": "bytes=99999-"}).status_code == 416
    head = httpx.head(f"{site}/app.js", headers={"accept-encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(whole))


def test_gzip_when_accepted(site: str) -> None:
    response = httpx.get(f"{site}/index.html", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert b"<!doctype html>" in response.content  # httpx decompressed it
    plain = httpx.get(f"{site}/index.html", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == response.content


def test_404s(site: str) -> None:
    assert httpx.get(f"{site}/no-such-file.txt").status_code == 404  # hassets
    assert httpx.post(f"{site}/no-route").status_code == 404  # hrouter


@pytest.mark.parametrize(
    "target",
    [
        "/../redline.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/redline.toml",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/..%2fredline.toml",
        "/static/..%2f..%2fredline.toml",
    ],
)
def test_traversal_attempts_get_404(site: str, target: str) -> None:
    status, body = raw_get(int(site.rsplit(":", 1)[1]), target)
    assert status == 404
    assert b"root:" not in body and b"[services" not in body


def test_template_page_from_redis_is_escaped(site: str) -> None:
    page = httpx.get(f"{site}/articles/2")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<h1 id="title">A web server made of queues</h1>' in page.text
    assert "&lt;b&gt;any&lt;/b&gt;" in page.text and "<b>any</b>" not in page.text
    assert "<span>http</span><span>redis</span>" in page.text


def test_rquery_json_endpoint(site: str) -> None:
    assert httpx.get(f"{site}/api/articles").json() == {"values": {"ids": ["1", "2"]}}
    one = httpx.get(f"{site}/api/articles/1").json()
    assert one["values"]["article"]["author"] == "ann"


def test_decorator_handler(site: str) -> None:
    assert httpx.get(f"{site}/hello/ann").json()["hello"] == "ann"


@needs_tool("chromium", "chromium")
def test_headless_chromium_renders_the_site(site: str) -> None:
    home = _dump_dom(f"{site}/")
    assert 'class="article"' in home, home[-2000:]
    assert "Queues that never lose a message" in home
    assert "A web server made of queues" in home
    article = _dump_dom(f"{site}/articles/1")
    assert '<h1 id="title">Queues that never lose a message</h1>' in article


def _dump_dom(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={Path(profile)}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
