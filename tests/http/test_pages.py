from __future__ import annotations

import json
from pathlib import Path

import pytest

from redline.errors import ConfigError
from redline.http.envelope import Request
from redline.http.pages import Pages


@pytest.fixture
def pages(tmp_path: Path) -> Pages:
    (tmp_path / "article.html").write_text(
        "<h1>{{ values.article.title }}</h1><p>{{ params.articleId }}</p>"
    )
    return Pages(
        [
            {"path": r"/articles/(?P<articleId>\d+)", "template": "article.html"},
            {"path": r"/api/articles/(?P<articleId>\d+)", "commands": [{"command": "get x"}]},
        ],
        tmp_path,
    )


def test_template_is_rendered_with_values_escaped(pages: Pages) -> None:
    request = Request("1", "GET", "/articles/12")
    found = pages.find(request)
    assert found is not None
    page, params = found
    assert params == {"articleId": "12"}
    response = pages.render(page, request.with_params(params), {"article": {"title": "<b>x"}})
    assert response.body == b"<h1>&lt;b&gt;x</h1><p>12</p>"
    assert response.header("content-type") == "text/html; charset=utf-8"


def test_a_page_without_template_answers_json(pages: Pages) -> None:
    request = Request("1", "GET", "/api/articles/3")
    found = pages.find(request)
    assert found is not None
    page, params = found
    assert page.query(params) == {
        "parameters": {"articleId": "3"},
        "commands": [{"command": "get x"}],
    }
    response = pages.render(page, request, {"x": "1"})
    assert json.loads(response.body) == {"values": {"x": "1"}}


def test_no_page_matches(pages: Pages) -> None:
    assert pages.find(Request("1", "GET", "/nothing")) is None


def test_bad_pages_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pages\[0\]"):
        Pages([{"path": "("}], tmp_path)
    with pytest.raises(ConfigError, match="no templates dir"):
        Pages([{"path": "/", "template": "x.html"}], None)
