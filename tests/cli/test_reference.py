"""Every command is documented: it says what it does, each option says what it means, and
docs/cli.md has a section for it that names each of its options (``make docs-cli`` writes it);
and naming one loads only its own modules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from redline.cli import main
from redline.cli.reference import PAGES, commands

PAGE = Path(__file__).parents[2] / "docs" / "cli.md"
EVERY = [(" ".join(path), command) for path, command in commands(main)]


def _section(page: str, name: str) -> str:
    """The text under the heading `name`, up to the next heading of a command."""
    found = re.search(rf"^#+ {re.escape(name)}\n(.*?)(?=^#+ redline|\Z)", page, re.S | re.M)
    assert found, f"docs/cli.md has no section for `{name}`: run `make docs-cli`"
    return found.group(1)


def test_the_tree_is_walked_whole() -> None:
    names = {name for name, _ in EVERY}
    assert {"redline", "redline queue pop", "redline jobs status", "redline worker"} <= names
    assert len(names) == len(EVERY) > 40


@pytest.mark.parametrize(("name", "command"), EVERY, ids=[name for name, _ in EVERY])
def test_each_command_says_what_it_and_its_options_do(name: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"`{name}` has no help text"
    for option in command.params:
        if isinstance(option, click.Option) and not option.hidden and option.name != "help":
            assert option.help, f"`{name} {option.opts[0]}` has no help text"


@pytest.mark.parametrize(("name", "command"), EVERY, ids=[name for name, _ in EVERY])
def test_docs_cli_has_each_command_and_its_options(name: str, command: click.Command) -> None:
    section = _section(PAGE.read_text(), name)
    for option in command.params:
        if isinstance(option, click.Option) and option.name != "help" and not option.hidden:
            named = all(re.search(rf"`[^`]*{re.escape(o)}\b", section) for o in option.opts)
            assert named, f"docs/cli.md's `{name}` does not name {option.opts}: `make docs-cli`"


def test_each_top_level_command_links_to_its_page() -> None:
    tops = {path[1] for path, _ in commands(main) if len(path) == 2}
    assert tops == set(PAGES), "a new command needs its page in redline.cli.reference.PAGES"
    for page in {page.split("#")[0] for page in PAGES.values()}:
        assert (PAGE.parent / page).is_file(), page


def test_a_command_loads_only_its_own_modules() -> None:
    """`redline queue …` does not import the web server, the dashboard or the jobs worker:
    the root group loads a subcommand when it is named."""
    code = (
        "import sys\n"
        "from redline.cli import main\n"
        "main(['queue', 'info', '--help'], standalone_mode=False)\n"
        "print(sorted(m for m in ('redline.http', 'redline.dashboard', 'redline.jobs.worker')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
