from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import Field

from redline.cli.common import config_options, load_or_exit
from redline.config import ServiceConfig, env_name, load_config
from redline.errors import ConfigError
from redline.runtime.runner import masked


class DemoConfig(ServiceConfig):
    in_: str = Field(alias="in")
    out: list[str]


def write(tmp_path: Path, doc: object, name: str = "c.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_file_env_and_set_in_that_order(tmp_path: Path) -> None:
    path = write(tmp_path, {"in": "a", "out": ["b"], "popTimeout": 3})
    config = load_config(DemoConfig, path, {"REDLINE_POP_TIMEOUT": "4"}, ['out=["c","d"]'])
    assert (config.in_, config.out, config.pop_timeout) == ("a", ["c", "d"], 4)


def test_toml_and_seed_names(tmp_path: Path) -> None:
    path = write(tmp_path, 'in = "a"\nout = ["b"]\nredisNamespace = "demo:mpush"\n', "c.toml")
    assert load_config(DemoConfig, path).service_namespace == "demo:mpush"
    assert env_name("serviceNamespace") == "REDLINE_SERVICE_NAMESPACE"


def test_every_problem_is_one_line_naming_field_value_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, {"out": ["b"], "popTimeout": "soon", "colour": "red"})
    with pytest.raises(ConfigError) as err:
        load_config(DemoConfig, path)
    problems = err.value.problems
    assert len(problems) == 3
    assert any(p.startswith("in: missing") for p in problems)
    assert any(p.startswith("popTimeout: 'soon'") and "number" in p for p in problems)
    assert any(p.startswith("colour: 'red'") and "unknown field" in p for p in problems)


def test_a_misspelt_field_is_given_the_one_meant(tmp_path: Path) -> None:
    path = write(tmp_path, {"in": "a", "out": ["b"], "popTimout": 5})
    with pytest.raises(ConfigError) as err:
        load_config(DemoConfig, path)
    (problem,) = err.value.problems
    assert problem.startswith("popTimout: 5 — unknown field (did you mean 'popTimeout'? known: ")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(DemoConfig, tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(DemoConfig, write(tmp_path, "{nope", "bad.json"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(DemoConfig, write(tmp_path, "= =", "bad.toml"))


def test_secrets_are_masked() -> None:
    config = DemoConfig.model_validate(
        {"in": "a", "out": [], "redis": "redis://u:hunter2@h:6379/0"}
    )
    assert "hunter2" not in json.dumps(masked(config))


@click.command()
@config_options
def _cmd(config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]) -> None:
    load_or_exit(DemoConfig, config_path, sets, redis=redis_url)
    click.echo("ok")


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"in": "a", "out": "notalist"}, "out: 'notalist'"),
        ({"out": ["b"]}, "in: missing"),
        ({"in": "a", "out": [], "colour": 1}, "colour: 1 — unknown field"),
    ],
)
def test_cli_exits_2_with_one_line_per_problem(tmp_path: Path, doc: object, says: str) -> None:
    result = CliRunner().invoke(_cmd, ["--config", str(write(tmp_path, doc))])
    assert result.exit_code == 2
    assert f"config error: {says}" in result.output


def test_propsfile_names_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, {"in": "a", "out": []})
    result = CliRunner().invoke(_cmd, [], env={"propsFile": str(path)})
    assert result.exit_code == 0, result.output
