"""rquery: run a declared sequence of Redis commands, with parameters and saved values.

A query is the seed's JSON document::

    {"parameters": {"articleId": 12345},
     "commands": [{"command": "hget article:$articleId section", "save": "section"},
                  {"command": "hget section:$section label", "save": "label"}]}

and its result is ``{"values": {"section": "news", "label": "News"}}``.

Each command string is split like a shell line (``shlex``: quotes group words), *then* every
``$name`` / ``${name}`` inside a word is replaced by a parameter or an earlier saved value. The
substituted text is never split again, so a value cannot add arguments. ``$$`` is a literal ``$``.

Safe by default: only read-only commands (`READ_ONLY`) run unless a `Policy` widens the list, and
when key prefixes are set every key a command names must start with one of them.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from redline.connection import AsyncClient
from redline.errors import QueryError

__all__ = [
    "READ_ONLY",
    "Policy",
    "Query",
    "Step",
    "check_step",
    "parse_query",
    "rquery",
    "run_query",
    "substitute",
]

# Where a command's keys are: 1 = the first argument only, "all" = every argument,
# "pairs" = every other argument from the first (MSET), "numkeys" = a count then that many keys.
KEYS_FIRST, KEYS_ALL, KEYS_PAIRS, KEYS_NUMKEYS = 1, "all", "pairs", "numkeys"


def _words(text: str) -> list[str]:
    return text.split()


_READ_ONLY_FIRST = _words("""
    get getrange strlen type ttl pttl expiretime pexpiretime getbit bitcount bitpos
    hget hmget hgetall hkeys hvals hlen hexists hstrlen hrandfield
    lrange llen lindex lpos
    smembers sismember smismember scard srandmember
    zrange zrangebyscore zrevrange zrevrangebyscore zrangebylex zrevrangebylex zscore zmscore
    zcard zcount zlexcount zrank zrevrank zrandmember
    xrange xrevrange xlen geopos geodist geohash geosearch georadius_ro
""")
_READ_ONLY_ALL = _words("mget exists sunion sinter sdiff")
_READ_ONLY_NUMKEYS = _words("zunion zinter zdiff sintercard zintercard")

#: The commands allowed when a `Policy` does not say otherwise: they read and never write.
READ_ONLY: frozenset[str] = frozenset(_READ_ONLY_FIRST + _READ_ONLY_ALL + _READ_ONLY_NUMKEYS)

# Write commands whose keys rquery can check against keyPrefixes once the config allows them.
_WRITE_FIRST = _words("""
    set setex psetex setnx getset getdel getex append incr incrby incrbyfloat decr decrby
    expire pexpire expireat persist hset hsetnx hdel hincrby hincrbyfloat
    lpush rpush lpushx rpushx lpop rpop lset ltrim lrem linsert
    sadd srem spop zadd zrem zincrby zpopmin zpopmax xadd xdel xtrim
""")

_KEY_SPECS: dict[str, int | str] = {
    **{name: KEYS_FIRST for name in _READ_ONLY_FIRST + _WRITE_FIRST},
    **{name: KEYS_ALL for name in [*_READ_ONLY_ALL, "del", "unlink", "touch"]},
    **{name: KEYS_NUMKEYS for name in _READ_ONLY_NUMKEYS},
    "mset": KEYS_PAIRS,
    "msetnx": KEYS_PAIRS,
}

# Commands that change the state of the shared connection: never run, whatever the config says.
NEVER: frozenset[str] = frozenset(
    _words("""
    select multi exec discard watch unwatch subscribe psubscribe ssubscribe monitor
    hello auth reset quit client sync psync readonly readwrite
""")
)

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(r"\$\$|\$\{(" + _NAME + r")\}|\$(" + _NAME + r")|\$")
_SAVE_NAME = re.compile(_NAME + r"\Z")

Value = str | int | float


@dataclass(frozen=True)
class Step:
    """One declared command: its words (before substitution) and the name to save its result as."""

    words: tuple[str, ...]
    save: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Query:
    """A parsed query: parameters and the steps to run in order."""

    parameters: Mapping[str, Value]
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Policy:
    """What a query may do: allowed command names (lower case; ``"config get"`` allows one
    subcommand) and key prefixes (empty: any key)."""

    allowed: frozenset[str] = READ_ONLY
    key_prefixes: tuple[str, ...] = ()
    max_commands: int = 100

    @classmethod
    def widened(cls, extra: Iterable[str], key_prefixes: Iterable[str] = ()) -> Policy:
        """The read-only policy plus `extra` commands."""
        return cls(READ_ONLY | {c.lower() for c in extra}, tuple(key_prefixes))


def _load(document: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, Mapping):
        return document
    try:
        data = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QueryError("malformed", f"the query is not valid JSON: {exc}") from None
    except RecursionError:  # hostile input: nesting deeper than the parser can follow
        raise QueryError("malformed", "the query is nested too deeply to be a query") from None
    if not isinstance(data, dict):
        raise QueryError("malformed", "the query must be a JSON object with 'commands'")
    return data


def _parameters(raw: Any) -> dict[str, Value]:
    if not isinstance(raw, dict):
        raise QueryError("invalid", f"'parameters' must be an object of name: value, got {raw!r}")
    for name, value in raw.items():
        if not _SAVE_NAME.match(name):
            raise QueryError("invalid", f"parameter name {name!r} is not a $name (letters, _)")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise QueryError(
                "invalid", f"parameter {name!r} = {value!r}: expected a string or a number"
            )
    return dict(raw)


def _step(index: int, raw: Any) -> Step:
    where = f"commands[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("command"), str):
        raise QueryError(
            "invalid", f"{where}: expected {{'command': 'hget key field'}}, got {raw!r}"
        )
    unknown = set(raw) - {"command", "save"}
    if unknown:
        raise QueryError(
            "invalid", f"{where}: unknown field(s) {sorted(unknown)}; known: command, save"
        )
    save = raw.get("save")
    if save is not None and not (isinstance(save, str) and _SAVE_NAME.match(save)):
        raise QueryError("invalid", f"{where}: 'save' must be a name like 'label', got {save!r}")
    try:
        words = tuple(shlex.split(raw["command"]))
    except ValueError as exc:
        raise QueryError("invalid", f"{where}: cannot split {raw['command']!r}: {exc}") from None
    if not words:
        raise QueryError("invalid", f"{where}: the command is empty")
    return Step(words, save, raw["command"])


def parse_query(document: str | bytes | Mapping[str, Any], policy: Policy | None = None) -> Query:
    """Parse and check the shape of a query (JSON text or an already-decoded object).

    Raises `QueryError` with code ``malformed`` (not JSON, not an object) or ``invalid``.
    """
    data = _load(document)
    unknown = set(data) - {"parameters", "commands"}
    if unknown:
        raise QueryError(
            "invalid", f"unknown field(s) {sorted(unknown)}; a query has parameters, commands"
        )
    commands = data.get("commands")
    if not isinstance(commands, list) or not commands:
        raise QueryError("invalid", f"'commands' must be a non-empty list, got {commands!r}")
    limit = (policy or Policy()).max_commands
    if len(commands) > limit:
        raise QueryError("invalid", f"{len(commands)} commands; at most {limit} are allowed")
    steps = tuple(_step(i, raw) for i, raw in enumerate(commands))
    return Query(_parameters(data.get("parameters", {})), steps)


def substitute(word: str, values: Mapping[str, Any]) -> str:
    """`word` with each ``$name``/``${name}`` replaced by ``values[name]`` (``$$`` → ``$``)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        if name is None:
            raise QueryError("invalid", f"a lone '$' in {word!r}: write $$ for a literal $")
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise QueryError(
                "unknown-name", f"${name} is not a parameter or saved value (known: {known})"
            )
        value = values[name]
        if value is None or isinstance(value, list | dict):
            raise QueryError(
                "invalid",
                f"${name} is {json.dumps(value)}: only a string or number can be substituted",
            )
        return str(value)

    return _REFERENCE.sub(one, word)


def _keys(name: str, args: list[str]) -> list[str]:
    spec = _KEY_SPECS.get(name)
    if spec is None:
        raise QueryError(
            "disallowed-key",
            f"cannot tell which arguments of {name!r} are keys, so keyPrefixes cannot be checked; "
            "remove keyPrefixes or use another command",
        )
    if spec == KEYS_FIRST:
        return args[:1]
    if spec == KEYS_ALL:
        return args
    if spec == KEYS_PAIRS:
        return args[::2]
    # isdigit() alone also accepts '²', which int() refuses
    count = int(args[0]) if args and args[0].isascii() and args[0].isdigit() else 0
    return args[1 : 1 + count]


def check_step(words: list[str], policy: Policy) -> None:
    """Refuse a (substituted) command that `policy` does not allow, saying why."""
    name = words[0].lower()
    pair = " ".join(w.lower() for w in words[:2])
    if name in NEVER:
        raise QueryError(
            "disallowed-command",
            f"command {name!r} is never allowed in a query: it changes the connection's state",
        )
    if name not in policy.allowed and pair not in policy.allowed:
        either = f"{name!r} or {pair!r}" if pair != name else repr(name)
        raise QueryError(
            "disallowed-command",
            f"command {name!r} is not allowed: only read-only commands run unless the "
            f"config's 'allow' list names it (as {either})",
        )
    if policy.key_prefixes:
        for key in _keys(name, words[1:]):
            if not key.startswith(policy.key_prefixes):
                raise QueryError(
                    "disallowed-key",
                    f"key {key!r} does not start with an allowed prefix "
                    f"{list(policy.key_prefixes)}",
                )


def _plain(value: Any) -> Any:
    """A reply as JSON-ready data: bytes → str (UTF-8), sets → sorted lists."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise QueryError(
                "command-failed", f"the reply {value[:40]!r} is not UTF-8 text"
            ) from None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _prepare(step: Step, values: Mapping[str, Any], policy: Policy) -> list[str]:
    words = [substitute(word, values) for word in step.words]
    check_step(words, policy)
    for word in words:
        if not _encodable(word):  # JSON's "\ud800" decodes to text no server can be sent
            raise QueryError("invalid", f"{step.text!r}: {word!r} is not valid Unicode text")
    return words


def _encodable(word: str) -> bool:
    try:
        word.encode()
    except UnicodeEncodeError:
        return False
    return True


def _failed(step: Step, exc: redis.exceptions.ResponseError) -> QueryError:
    return QueryError("command-failed", f"{step.text!r} failed: {exc}")


async def run_query(
    client: AsyncClient, query: Query, policy: Policy | None = None
) -> dict[str, Any]:
    """Run `query` on `client` and return ``{"values": {...}}`` (the saved results).

    Raises `QueryError`; Redis connection errors propagate unchanged (the caller retries).
    """
    policy = policy or Policy()
    values: dict[str, Any] = dict(query.parameters)
    saved: dict[str, Any] = {}
    for step in query.steps:
        words = _prepare(step, values, policy)
        try:
            reply = _plain(await client.execute_command(*words))
        except redis.exceptions.ResponseError as exc:
            raise _failed(step, exc) from None
        if step.save:
            values[step.save] = saved[step.save] = reply
    return {"values": saved}


async def rquery(
    client: AsyncClient, document: str | bytes | Mapping[str, Any], policy: Policy | None = None
) -> dict[str, Any]:
    """Parse and run a query document in one call.

    >>> await rquery(client, {"parameters": {"id": 1}, "commands": [
    ...     {"command": "hget article:$id section", "save": "section"}]})
    {'values': {'section': 'news'}}
    """
    return await run_query(client, parse_query(document, policy), policy)
