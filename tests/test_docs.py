"""The docs a newcomer follows point at things that exist: every relative link (and its #anchor)
in the README, docs/ and the examples' READMEs, and every test they cite as the proof of a
promise (`tests/…py::test_name`). DEVELOPING.md and benchmarks.md are a record of past work
and may name what has since gone; their links must still resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS, *sorted((ROOT / "examples").glob("*/README.md"))]
RECORDS = {"DEVELOPING.md", "benchmarks.md"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of `page`."""
    lines = page.read_text().splitlines()
    titles = (line.lstrip("#").strip().lower() for line in lines if line.startswith("#"))
    return {re.sub(r"[^\w\- ]", "", title).replace(" ", "-") for title in titles}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: dead link {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading #{anchor} in {path}"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p.name not in RECORDS], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_cited_test_exists(page: Path) -> None:
    for path, name in CITED.findall(page.read_text()):
        source = ROOT / path
        assert source.is_file(), f"{page.name} cites {path}, which is gone"
        assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.M), (
            f"{page.name} cites {path}::{name}, which is gone"
        )
