"""The queue's server-side functions: library `redline_queue`, one function per `queue_*.lua`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

from redline.connection import AsyncClient, SyncClient
from redline.connection.channels import held
from redline.queue.core import Block, Call, keys_of
from redline.queue.model import SCRIPT_KEYS
from redline.scripting import scripts
from redline.scripting.functions import Library

__all__ = ["LIBRARY", "blocked_sync", "pipelined", "run_async", "run_sync"]

_READ_ONLY = ("queue_info", "queue_view", "queue_waiting", "queue_holders")
_PUSHES = ("queue_push", "queue_push_run")
# At maxmemory (noeviction) only push is refused: consumers must still be able to take, settle
# and clean up, or a full server could never be drained (tests/hardening/test_memory.py).
LIBRARY = Library(
    "redline_queue",
    SCRIPT_KEYS,
    read_only=_READ_ONLY,
    allow_oom=[s for s in SCRIPT_KEYS if s not in (*_READ_ONLY, *_PUSHES)],
)


@functools.lru_cache(maxsize=4096)
def _keys(key: str, script: str) -> Sequence[str]:
    """The KEYS of `script` for queue `key` (cached: a pop of one at a time spent a twentieth of
    its client CPU building them)."""
    return tuple(keys_of(key).of_script(script))


async def run_async(client: AsyncClient, call: Call, use_functions: bool) -> Any:
    """Perform `call`: FCALL where the server has Functions (and `use_functions`), else EVALSHA."""
    keys = _keys(call.key, call.script)
    if use_functions:
        return await LIBRARY.call(client, call.script, keys, call.args)
    return await scripts.run(client, call.script, keys, call.args)


def pipelined(client: AsyncClient, call: Call, use_functions: bool) -> tuple[Any, ...] | None:
    """`call` as an FCALL command to queue in a pipeline of `client`, or None where it must go
    through `run_async` (see `Library.command`)."""
    if not use_functions:
        return None
    return LIBRARY.command(client, call.script, _keys(call.key, call.script), call.args)


def run_sync(client: SyncClient, call: Call, use_functions: bool) -> Any:
    """Blocking twin of `run_async`."""
    keys = _keys(call.key, call.script)
    if use_functions:
        return LIBRARY.call_sync(client, call.script, keys, call.args)
    return scripts.run_sync(client, call.script, keys, call.args)


def blocked_sync(client: SyncClient, block: Block, call: Call, use_functions: bool) -> Any:
    """`block`'s BLMOVE, then `call`, whose reply is returned: both written at once over the
    thread's held connection where `call` is a plain FCALL (one round trip for an empty
    queue's wait and the pop that claims what came, not two), else one after the other."""
    channel = held(client)
    command = pipelined(cast(Any, client), call, use_functions)
    if command is None or not channel.direct:
        client.execute_command(*block.command)  # type: ignore[no-untyped-call]
        return run_sync(client, call, use_functions)
    moved, reply = channel.run([block.command, command])
    if isinstance(moved, Exception):
        raise moved
    if isinstance(reply, Exception):  # e.g. a restarted server without the library: load it
        return run_sync(client, call, use_functions)
    return reply
