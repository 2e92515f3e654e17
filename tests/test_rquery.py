from __future__ import annotations

import pytest

from redline.connection import AsyncClient
from redline.errors import QueryError
from redline.rquery.query import Policy, check_step, parse_query, rquery, substitute

SEED = {
    "parameters": {"articleId": 12345},
    "commands": [
        {"command": "hget article:$articleId section", "save": "section"},
        {"command": "hget section:$section label", "save": "label"},
    ],
}


async def seed_data(client: AsyncClient) -> None:
    await client.hset("article:12345", "section", "news")
    await client.hset("section:news", "label", "News")


async def test_the_seed_example_verbatim(aredis: AsyncClient) -> None:
    await seed_data(aredis)
    assert await rquery(aredis, SEED) == {"values": {"section": "news", "label": "News"}}


async def test_json_text_and_unsaved_commands(aredis: AsyncClient) -> None:
    await aredis.rpush("l", "a", "b")
    text = '{"commands": [{"command": "llen l"}, {"command": "lrange l 0 -1", "save": "all"}]}'
    assert await rquery(aredis, text) == {"values": {"all": ["a", "b"]}}


async def test_quoted_arguments_and_values_are_never_split_again(aredis: AsyncClient) -> None:
    await aredis.hset("h", "two words", "x")
    await aredis.hset("h", "a b", "spaced")
    doc = {
        "parameters": {"field": "a b"},
        "commands": [
            {"command": "hget h 'two words'", "save": "quoted"},
            {"command": "hget h $field", "save": "param"},
            {"command": "hget h ${field}", "save": "braced"},
        ],
    }
    values = (await rquery(aredis, doc))["values"]
    assert values == {"quoted": "x", "param": "spaced", "braced": "spaced"}


async def test_a_value_cannot_inject_arguments(aredis: AsyncClient) -> None:
    await aredis.set("k", "v")
    doc = {"parameters": {"key": "k extra"}, "commands": [{"command": "get $key", "save": "v"}]}
    assert await rquery(aredis, doc) == {"values": {"v": None}}  # one key named "k extra"


def test_substitution_rules() -> None:
    assert substitute("a:$x:${y}z:$$", {"x": 1, "y": "Y"}) == "a:1:Yz:$"
    with pytest.raises(QueryError, match=r"\$nope is not a parameter") as info:
        substitute("$nope", {"x": 1})
    assert info.value.code == "unknown-name"
    with pytest.raises(QueryError, match="lone"):
        substitute("cost$", {})
    with pytest.raises(QueryError, match="only a string or number"):
        substitute("$l", {"l": ["a"]})


@pytest.mark.parametrize(
    "command",
    ["flushall", "config set maxmemory 1", "eval 'return 1' 0", "set k v", "del k", "keys *"],
)
async def test_writes_and_dangerous_commands_are_refused(aredis: AsyncClient, command: str) -> None:
    await aredis.set("k", "v")
    with pytest.raises(QueryError, match="is not allowed") as info:
        await rquery(aredis, {"commands": [{"command": command}]})
    assert info.value.code == "disallowed-command"
    assert await aredis.get("k") == b"v"


async def test_the_allow_list_can_be_widened(aredis: AsyncClient) -> None:
    policy = Policy.widened(["set", "config get"])
    doc = {"commands": [{"command": "set k v"}, {"command": "config get maxmemory", "save": "m"}]}
    assert "m" in (await rquery(aredis, doc, policy))["values"]
    assert await aredis.get("k") == b"v"
    with pytest.raises(QueryError, match="'config' is not allowed"):
        await rquery(aredis, {"commands": [{"command": "config set maxmemory 1"}]}, policy)


def test_connection_state_commands_are_never_allowed() -> None:
    with pytest.raises(QueryError, match="never allowed"):
        check_step(["select", "2"], Policy.widened(["select"]))


async def test_key_prefixes(aredis: AsyncClient) -> None:
    policy = Policy.widened(["mset"], key_prefixes=["app:"])
    await rquery(aredis, {"commands": [{"command": "mset app:a 1 app:b 2"}]}, policy)
    doc = {"commands": [{"command": "mget app:a app:b", "save": "v"}]}
    assert await rquery(aredis, doc, policy) == {"values": {"v": ["1", "2"]}}
    for command in ["get secret", "mget app:a secret", "zunion 2 app:a secret", "mset app:a 1 b 2"]:
        with pytest.raises(QueryError, match="does not start with an allowed prefix") as info:
            await rquery(aredis, {"commands": [{"command": command}]}, policy)
        assert info.value.code == "disallowed-key"
    with pytest.raises(QueryError, match="cannot tell which arguments"):
        check_step(["object", "encoding", "app:a"], Policy.widened(["object"], ["app:"]))


@pytest.mark.parametrize(
    ("document", "code", "message"),
    [
        ("{not json", "malformed", "not valid JSON"),
        ("[1, 2]", "malformed", "must be a JSON object"),
        ({"commands": []}, "invalid", "non-empty list"),
        ({"commands": "get k"}, "invalid", "non-empty list"),
        ({"commands": [{"cmd": "get k"}]}, "invalid", "expected"),
        ({"commands": [{"command": "get k", "safe": "x"}]}, "invalid", "unknown field"),
        ({"commands": [{"command": "get k", "save": "1x"}]}, "invalid", "'save' must be"),
        ({"commands": [{"command": "get 'k"}]}, "invalid", "cannot split"),
        ({"commands": [{"command": "  "}]}, "invalid", "empty"),
        ({"parameters": [1], "commands": [{"command": "get k"}]}, "invalid", "'parameters'"),
        ({"parameters": {"a": {"b": 1}}, "commands": [{"command": "get k"}]}, "invalid", "string"),
        ({"parameters": {"a": True}, "commands": [{"command": "get k"}]}, "invalid", "string"),
        ({"params": {}, "commands": [{"command": "get k"}]}, "invalid", "unknown field"),
    ],
)
def test_bad_documents_say_what_is_wrong(document: object, code: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as info:
        parse_query(document)  # type: ignore[arg-type]
    assert info.value.code == code


def test_too_many_commands() -> None:
    doc = {"commands": [{"command": "get k"}] * 3}
    with pytest.raises(QueryError, match="at most 2"):
        parse_query(doc, Policy(max_commands=2))


async def test_unknown_name_and_failing_command(aredis: AsyncClient) -> None:
    with pytest.raises(QueryError) as info:
        await rquery(aredis, {"commands": [{"command": "hget article:$id section"}]})
    assert info.value.code == "unknown-name"
    await aredis.set("s", "string")
    with pytest.raises(QueryError, match="WRONGTYPE") as info:
        await rquery(aredis, {"commands": [{"command": "hget s f"}]})
    assert info.value.code == "command-failed"


async def test_replies_are_json_ready(aredis: AsyncClient) -> None:
    await aredis.hset("h", mapping={"a": "1"})
    await aredis.sadd("s", "y", "x")
    doc = {
        "commands": [
            {"command": "hgetall h", "save": "hash"},
            {"command": "smembers s", "save": "set"},
            {"command": "scard s", "save": "n"},
        ]
    }
    values = (await rquery(aredis, doc))["values"]
    assert values == {"hash": {"a": "1"}, "set": ["x", "y"], "n": 2}
    await aredis.set("bin", b"\xff\xfe")
    with pytest.raises(QueryError, match="not UTF-8"):
        await rquery(aredis, {"commands": [{"command": "get bin", "save": "b"}]})
