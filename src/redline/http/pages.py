"""hrender's pages: a route pattern, an rquery declaration for the data, a Jinja2 template.

A page is written in config as::

    [[pages]]
    path = "/articles/(?P<articleId>\\d+)"
    template = "article.html"          # omit it for a JSON endpoint
    commands = [{command = "hgetall article:$articleId", save = "article"}]

The path's named groups (and those hrouter found) are the query's parameters; the query's saved
values are the template's ``values`` (besides ``params`` and ``request``). Templates are
autoescaped: a value from Redis cannot inject markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from redline.errors import ConfigError
from redline.http.envelope import Request, Response
from redline.http.routes import check_regex

__all__ = ["Page", "PageSpec", "Pages"]


class PageSpec(BaseModel):
    """One page as written in config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="regex matched against the whole decoded path")
    template: str | None = Field(None, description="Jinja2 template; none: answer JSON")
    commands: list[dict[str, Any]] = Field(default_factory=list, description="rquery commands")
    parameters: dict[str, Any] = Field(default_factory=dict, description="default parameters")

    @field_validator("path")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return check_regex(value)


@dataclass(frozen=True)
class Page:
    path: re.Pattern[str]
    spec: PageSpec

    def query(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The rquery document for a request with `params`."""
        return {"parameters": {**self.spec.parameters, **params}, "commands": self.spec.commands}


class Pages:
    """The pages of one hrender service and the Jinja2 environment that renders them."""

    def __init__(self, specs: Sequence[PageSpec | Mapping[str, Any]], templates: Path | None):
        problems: list[str] = []
        self.pages = [_page(i, spec, problems) for i, spec in enumerate(specs)]
        if problems:
            raise ConfigError(problems)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)) if templates else None,
            autoescape=True,
            undefined=jinja2.ChainableUndefined,
        )
        for page in self.pages:
            if page.spec.template and templates is None:
                raise ConfigError([f"page {page.spec.path!r}: template set but no templates dir"])

    def find(self, request: Request) -> tuple[Page, dict[str, str]] | None:
        """The first page whose path matches, with the params for its query."""
        for page in self.pages:
            found = page.path.fullmatch(request.route_path)
            if found:
                own = {k: v for k, v in found.groupdict().items() if v is not None}
                return page, {**request.params, **own}
        return None

    def render(self, page: Page, request: Request, values: Mapping[str, Any]) -> Response:
        """The page's response: the template rendered with `values`, or `values` as JSON."""
        if page.spec.template is None:
            return Response.json(request.id, {"values": dict(values)})
        template = self.env.get_template(page.spec.template)
        html = template.render(values=values, params=request.params, request=request)
        return Response.html(request.id, html)


def _page(index: int, spec: PageSpec | Mapping[str, Any], problems: list[str]) -> Page:
    try:
        model = spec if isinstance(spec, PageSpec) else PageSpec.model_validate(spec)
    except ValueError as exc:
        problems.append(f"pages[{index}]: {exc}")
        return Page(re.compile("(?!)"), PageSpec(path="(?!)", template=None))
    return Page(re.compile(model.path), model)
