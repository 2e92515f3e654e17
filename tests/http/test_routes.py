from __future__ import annotations

import pytest

from redline.errors import ConfigError
from redline.http.routes import compile_routes

TABLE = compile_routes(
    [
        {"path": r"/api/(?P<id>\d+)", "queue": "api-post", "method": "POST"},
        {"path": r"/api/(?P<id>\d+)", "queue": "api", "method": ["GET", "HEAD"]},
        {"path": r"/admin/.*", "queue": "admin", "host": r"admin\.example\.org"},
        {"path": r"/static/(?P<path>.*)", "queue": "assets"},
        {"path": r"/(?P<path>.*)", "queue": "fallback", "method": "GET"},
    ]
)


def test_first_matching_route_wins_with_named_groups() -> None:
    found = TABLE.match("GET", "/api/42")
    assert found is not None
    assert (found.route.queue, dict(found.params)) == ("api", {"id": "42"})
    post = TABLE.match("POST", "/api/42")
    assert post is not None and post.route.queue == "api-post"


def test_host_must_match_when_given() -> None:
    found = TABLE.match("GET", "/admin/x", host="admin.example.org")
    assert found is not None and found.route.queue == "admin"
    other = TABLE.match("GET", "/admin/x", host="www.example.org")
    assert other is not None and other.route.queue == "fallback"


def test_whole_path_must_match_and_nothing_matching_is_none() -> None:
    assert TABLE.match("DELETE", "/api/42x") is None
    assert TABLE.match("PUT", "/nothing") is None


def test_bad_routes_are_refused_naming_each() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_routes([{"path": "(", "queue": "q"}, {"path": "/ok"}])
    text = "\n".join(caught.value.problems)
    assert "routes[0]" in text and "not a valid regular expression" in text
    assert "routes[1]" in text and "queue" in text


def test_a_group_that_took_no_part_is_not_a_param() -> None:
    table = compile_routes([{"path": r"/(?P<a>x)?(?P<b>y)?", "queue": "q"}])
    found = table.match("GET", "/y")
    assert found is not None and dict(found.params) == {"b": "y"}
    assert table.uses_host is False and TABLE.uses_host is True


async def test_router_matches_the_host_header_without_its_port() -> None:
    from redline.http.envelope import Request
    from redline.http.hrouter import Router, RouterConfig
    from redline.http.worker import Forward

    routes = [
        {"path": r"/(?P<p>.*)", "queue": "admin", "host": r"admin\.example\.org"},
        {"path": r"/(?P<p>.*)", "queue": "www"},
    ]
    router = Router(RouterConfig.model_validate({"in": "q", "routes": routes}))
    headers = (("host", "admin.example.org:8080"),)
    admin = await router.respond(None, Request("1", "GET", "/a%20b", headers=headers))  # type: ignore[arg-type]
    www = await router.respond(None, Request("2", "GET", "/a", params={"k": "v"}))  # type: ignore[arg-type]
    assert isinstance(admin, Forward) and isinstance(www, Forward)
    assert (admin.queue, admin.request.params) == ("admin", {"p": "a b"})
    assert (www.queue, www.request.params) == ("www", {"k": "v", "p": "a"})
    assert admin.request.headers == headers and admin.request.id == "1"
