from __future__ import annotations

import json
from pathlib import Path

import redis

from tests.helpers import invoke, run

SEED = {
    "parameters": {"articleId": 12345},
    "commands": [
        {"command": "hget article:$articleId section", "save": "section"},
        {"command": "hget section:$section label", "save": "label"},
    ],
}


def test_rquery_reads_stdin_and_prints_json(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset("article:12345", "section", "news")
    client.hset("section:news", "label", "News")
    done = run("rquery", "--redis", redis_url, "-", input=json.dumps(SEED))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"values": {"section": "news", "label": "News"}}


def test_rquery_reads_a_file_and_refuses_writes(redis_url: str, tmp_path: Path) -> None:
    query = tmp_path / "q.json"
    query.write_text(json.dumps({"commands": [{"command": "flushall"}]}))
    done = invoke("rquery", "--redis", redis_url, str(query))
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "disallowed-command"
    assert "'flushall' is not allowed" in done.stderr
    assert "names it (as 'flushall')" in done.stderr  # once, not "'flushall' or 'flushall'"


def test_rquery_config_widens_the_allow_list(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "rquery.json"
    config.write_text(json.dumps({"allow": ["set"], "keyPrefixes": ["app:"]}))
    query = json.dumps(
        {"commands": [{"command": "set app:x 1"}, {"command": "get app:x", "save": "x"}]}
    )
    done = invoke("rquery", "--redis", redis_url, "--config", str(config), "-", input=query)
    assert json.loads(done.stdout) == {"values": {"x": "1"}}, done.stderr


def test_rquery_bad_input(redis_url: str, tmp_path: Path) -> None:
    done = invoke("rquery", "--redis", redis_url, "-", input="{nope")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "malformed"
    missing = invoke("rquery", "--redis", redis_url, str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    help_text = invoke("rquery-service", "--help").stdout
    assert "reply" in help_text
