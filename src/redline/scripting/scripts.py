"""The one registry of server-side Lua: each atomic operation is a `.lua` file in `lua/` beside it.

A script is read once, and called through redis-py's script object (EVALSHA, reloaded on
NOSCRIPT), so the same object works on standalone servers, clusters and pipelines. A line
``-- include _<part>.lua`` in a script is replaced by the text of that file (Lua helpers that
several scripts share, such as `_retention.lua`): scripts cannot call each other, and a helper
written once is kept once.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

from redline.connection import AsyncClient, SyncClient
from redline.connection.channels import Batched, batched, held

__all__ = [
    "lua_body",
    "lua_source",
    "run",
    "run_batched",
    "run_batched_many",
    "run_held",
    "run_held_many",
    "run_sync",
    "sha",
]

Arg = str | bytes | int | float


_INCLUDE = re.compile(r"^-- include (_\w+)\.lua$", re.MULTILINE)


@cache
def lua_source(name: str) -> str:
    """The text of ``redline/scripting/lua/<name>.lua``, its ``-- include _<part>.lua`` lines
    replaced."""
    return _INCLUDE.sub(lambda found: lua_source(found.group(1)), _lua_text(name))


def lua_body(name: str) -> tuple[str, list[str]]:
    """The text of ``<name>.lua`` without its ``-- include`` lines, and the parts they name,
    in order (`lua_source` is the two together)."""
    text = _lua_text(name)
    return _INCLUDE.sub("", text), _INCLUDE.findall(text)


@cache
def _lua_text(name: str) -> str:
    return resources.files("redline.scripting").joinpath("lua", f"{name}.lua").read_text()


@cache
def _async_script(name: str) -> AsyncScript:
    # No registered client: every call passes its own. Bytes, so no encoder is needed to hash it.
    return AsyncScript(None, lua_source(name).encode())  # type: ignore[arg-type]


@cache
def _sync_script(name: str) -> Script:
    return Script(None, lua_source(name).encode())  # type: ignore[arg-type]


def sha(name: str) -> str:
    """The SHA1 that EVALSHA calls script `name` by."""
    return str(_sync_script(name).sha)


async def run(client: AsyncClient, name: str, keys: Sequence[str], args: Sequence[Arg] = ()) -> Any:
    """Run script `name` with `keys` (all in one cluster slot) and `args`."""
    return await _async_script(name)(keys=list(keys), args=list(args), client=client)


async def run_batched(
    client: AsyncClient,
    name: str,
    keys: Sequence[str],
    args: Sequence[Arg] = (),
    channel: Batched | None = None,
) -> Any:
    """`run` through the client's auto-pipelined channel (`redline.connection.batched`): for
    producers, whose calls are one script each, often from many coroutines at once. A
    `channel` of the caller's own (a `Batched` of `client`) keeps its calls from waiting
    behind the round trips of the client's other callers."""
    script = _async_script(name)
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        return await (channel or batched(client)).call(command)
    except NoScriptError:  # a server that has not seen it yet (or restarted): load, once
        await client.script_load(script.script)
    return await (channel or batched(client)).call(command)


async def run_batched_many(
    client: AsyncClient, name: str, calls: Iterable[tuple[Sequence[str], Sequence[Arg]]]
) -> AsyncIterator[Any]:
    """Asyncio twin of `run_held_many`: the replies of script `name` run once per ``(keys,
    args)`` in `calls`, in order, over the client's batched channel. The first goes alone
    (`run_batched`: it loads the script if the server lacks it, so no later call can fail for
    that and be retried out of order); each later one is sent as soon as it is made, and
    `calls` makes the next while the server runs it (calls made during a round trip go
    together with the next). A failed call raises; calls after it may have run."""
    pending = iter(calls)
    first = next(pending, None)
    if first is None:
        return
    yield await run_batched(client, name, *first)
    sha, channel = _async_script(name).sha, batched(client)
    sent: deque[asyncio.Future[Any]] = deque()
    try:
        for keys, args in pending:
            sent.append(
                asyncio.ensure_future(channel.call(("EVALSHA", sha, len(keys), *keys, *args)))
            )
            await asyncio.sleep(0)  # it goes out now, or joins the round trip after this one
            while sent and sent[0].done():
                yield sent.popleft().result()
        while sent:
            yield await sent.popleft()
    finally:
        for unread in sent:  # the caller stopped (or a call failed): nobody reads these
            unread.cancel()


def run_held(client: SyncClient, name: str, keys: Sequence[str], args: Sequence[Arg] = ()) -> Any:
    """Blocking twin of `run_batched`: over the client's connection kept for this thread
    (`redline.connection.channels.held`)."""
    script = _sync_script(name)
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        return held(client).call(command)
    except NoScriptError:
        client.script_load(script.script)
    return held(client).call(command)


def run_held_many(
    client: SyncClient, name: str, calls: Iterable[tuple[Sequence[str], Sequence[Arg]]]
) -> Iterator[Any]:
    """The replies of script `name` run once per ``(keys, args)`` in `calls`, in order, over
    the thread's kept connection. The first goes alone (`run_held`: it loads the script if the
    server lacks it); each later one is written before the reply of the one before is read
    (`Held.calls`): while the server runs one, `calls` (a generator) makes the next. A server
    that loses the script after the first call fails the call."""
    pending = iter(calls)
    first = next(pending, None)
    if first is None:
        return
    yield run_held(client, name, *first)
    sha = _sync_script(name).sha
    yield from held(client).calls(
        ("EVALSHA", sha, len(keys), *keys, *args) for keys, args in pending
    )


def run_sync(client: SyncClient, name: str, keys: Sequence[str], args: Sequence[Arg] = ()) -> Any:
    """Blocking twin of `run`."""
    return _sync_script(name)(keys=list(keys), args=list(args), client=client)
