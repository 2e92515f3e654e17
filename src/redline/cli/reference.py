"""docs/cli.md, written from the click tree: every command, its --help text and its options.

``python -m redline.cli.reference > docs/cli.md`` (``make docs-cli``) after changing a command;
tests/cli/test_reference.py checks that every command and option is on the page.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Iterator

import click

__all__ = ["PAGES", "commands", "markdown"]

# The page that explains each top-level command's part, with examples.
PAGES = {
    "dev": "../README.md#dev-mode-a-server-with-nothing-installed",
    "ping": "../README.md#dev-mode-a-server-with-nothing-installed",
    "demo": "services.md",
    "mpush": "services.md#mpush",
    "lpush": "services.md#lpush",
    "mbalance": "services.md#mbalance",
    "metrics": "services.md#metrics-redlineruntimemetricspy",
    "queue": "queue.md",
    "rquery": "rquery.md",
    "rquery-service": "rquery.md",
    "vpush": "vpush.md",
    "scale": "scaling.md",
    "cscale": "scaling.md",
    "deploy": "scaling.md",
    "rollback": "scaling.md",
    "status": "scaling.md",
    "services": "scaling.md",
    "up": "web.md#redline-up-file",
    "himporter": "web.md#the-services",
    "hrouter": "web.md#the-services",
    "hassets": "web.md#the-services",
    "hrender": "web.md#the-services",
    "handler": "web.md#your-own-handler",
    "worker": "jobs.md",
    "jobs": "jobs.md",
    "sidekiq": "sidekiq.md",
    "dashboard": "dashboard.md",
}

INTRO = """\
# The `redline` command

Every command and its options, as `--help` prints them (`redline COMMAND --help` says the same
on the terminal); each section links to the page that explains the part, with examples. Every
command that talks to Redis takes `--redis URL` ([the URL forms](../README.md#redis-urls));
without it, redline uses `127.0.0.1:6379`, else the server `redline dev` runs, else an embedded
one for the command's duration. A command that fails prints one line, `error: …` (or
`config error: …` per problem), saying what to do, and exits non-zero: 2 for a bad option,
value or configuration, 1 otherwise. Written by `make docs-cli` from the commands themselves.
"""


def commands(
    group: click.Group, path: tuple[str, ...] = ("redline",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under `group` (itself first) with its path, depth first, sorted by name."""
    yield path, group
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        elif command is not None and not command.hidden:
            yield (*path, name), command


def markdown(root: click.Group) -> str:
    """The whole page."""
    found = list(commands(root))
    index = " · ".join(f"[`{' '.join(p[1:])}`](#{'-'.join(p)})" for p, _ in found[1:])
    sections = [_section(path, command) for path, command in found]
    return "\n".join([INTRO, index, "", *sections]).rstrip() + "\n"


def _section(path: tuple[str, ...], command: click.Command) -> str:
    ctx = click.Context(command, info_name=" ".join(path))
    usage = " ".join([*path, *command.collect_usage_pieces(ctx)])
    heading = "##" if len(path) <= 2 else "###"
    lines = [f"{heading} {' '.join(path)}", "", "```console", f"$ {usage}", "```", ""]
    lines += [*_text(command.help or ""), ""]
    rows = [_row(option, ctx) for option in command.params if isinstance(option, click.Option)]
    if any(rows):
        lines += ["| option | meaning |", "|---|---|", *[r for r in rows if r], ""]
    if len(path) == 2 and path[1] in PAGES:
        page = PAGES[path[1]]
        lines += [f"More: [{page.split('#')[0]}]({page}).", ""]
    return "\n".join(lines)


def _text(help_text: str) -> list[str]:
    """The help's paragraphs; its indented blocks (click's ``\\b`` ones, examples) as code."""
    out: list[str] = []
    code: list[str] = []
    for line in _lines(help_text):
        if line.startswith("  ") or (code and not line):
            code.append(line)
            continue
        if code:
            out += _code(code)
            code = []
        if line or (out and out[-1]):  # one blank line between paragraphs
            out.append(line)
    out += _code(code)
    while out and not out[-1]:
        out.pop()
    return out


def _lines(help_text: str) -> Iterator[str]:
    """The help's lines, "Example:  redline …" split into a heading and its first line."""
    for line in inspect.cleandoc(help_text).splitlines():
        heading = re.match(r"(Examples?:) +(\S.*)", line)
        if heading:
            yield heading[1]
            yield " " * line.index(heading[2]) + heading[2]  # in line with the lines below
        else:
            yield "" if line.strip() == "\b" else line


def _code(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return []
    return ["```", *textwrap.dedent("\n".join(lines)).splitlines(), "```", ""]


def _row(option: click.Option, ctx: click.Context) -> str:
    record = option.get_help_record(ctx)
    if record is None or option.name == "help":
        return ""
    names, meaning = (part.replace("|", "\\|") for part in record)
    meaning = re.sub(r", here \d+", "", meaning)  # the cores of the machine that wrote the page
    return f"| `{names}` | {meaning} |"


if __name__ == "__main__":
    from redline.cli import main

    print(markdown(main), end="")
