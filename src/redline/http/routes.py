"""hrouter's ordered table of regular expressions: the first route that matches wins.

A route matches a request when its ``path`` pattern matches the whole decoded path
(``re.fullmatch``), its ``method`` (if given) names the request's method, and its ``host``
pattern (if given) matches the whole Host header without its port. Named groups of the path
pattern become the request's ``params``, handed on to the handler.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from redline.errors import ConfigError

__all__ = ["Match", "Route", "RouteSpec", "RouteTable", "check_regex", "compile_routes"]


def check_regex(value: str) -> str:
    """`value` if it compiles as a regular expression; a ValueError saying why otherwise."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


class RouteSpec(BaseModel):
    """One route as written in config: ``{path = "/hello/(?P<name>\\w+)", queue = "web:hello"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="regular expression matched against the whole decoded path")
    queue: str = Field(description="the handler queue that gets matching requests")
    method: str | list[str] | None = Field(None, description="GET, or [GET, HEAD]; none: any")
    host: str | None = Field(None, description="regex matched against the Host (no port)")

    @field_validator("path", "host")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else check_regex(value)


@dataclass(frozen=True)
class Route:
    path: re.Pattern[str]
    queue: str
    methods: frozenset[str] | None = None
    host: re.Pattern[str] | None = None

    @classmethod
    def of(cls, spec: RouteSpec) -> Route:
        methods = [spec.method] if isinstance(spec.method, str) else spec.method
        return cls(
            path=re.compile(spec.path),
            queue=spec.queue,
            methods=frozenset(m.upper() for m in methods) if methods else None,
            host=re.compile(spec.host) if spec.host else None,
        )


class Match(msgspec.Struct, frozen=True):  # one per request: a struct is made fastest
    route: Route
    params: Mapping[str, str]


class RouteTable:
    """Routes in order; `match` returns the first that fits, or None (→ 404)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        self.uses_host = any(route.host is not None for route in self.routes)

    def match(self, method: str, path: str, host: str = "") -> Match | None:
        for route in self.routes:
            if route.methods is not None and method.upper() not in route.methods:
                continue
            if route.host is not None and not route.host.fullmatch(host):
                continue
            found = route.path.fullmatch(path)
            if found:
                params = found.groupdict()
                if None in params.values():  # a group that took no part in the match
                    params = {k: v for k, v in params.items() if v is not None}
                return Match(route, params)
        return None


def compile_routes(specs: Sequence[RouteSpec | Mapping[str, object]]) -> RouteTable:
    """Build a table from config entries; raises `ConfigError` naming each bad route."""
    problems, routes = [], []
    for index, spec in enumerate(specs):
        try:
            model = spec if isinstance(spec, RouteSpec) else RouteSpec.model_validate(spec)
        except ValueError as exc:
            problems.append(f"routes[{index}]: {exc}")
            continue
        routes.append(Route.of(model))
    if problems:
        raise ConfigError(problems)
    return RouteTable(routes)
