"""Redis Functions built from the script registry's `.lua` files, with EVALSHA as the fallback.

A `Library` wraps the body of each ``redline/scripting/lua/<script>.lua`` into
``redis.register_function{function_name='redline_<script>', callback=function(KEYS, ARGV) … end}``
so one Lua source serves both ways: `FCALL redline_<script>` where the server has Functions
(Redis 7+, Valkey), `EVALSHA` of the same file where it does not (older servers, or a user whose
ACL forbids FUNCTION). The library is loaded with ``FUNCTION LOAD REPLACE`` on a client's first
call (on a cluster, on every primary), and again when a call finds it missing (a restarted
server without persistence), so other languages can `FCALL` the same names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from redis.exceptions import ResponseError

from redline.connection import AsyncClient, SyncClient, is_cluster_client
from redline.connection.channels import Batched, Held, held
from redline.scripting import scripts

__all__ = ["Library", "function_name"]

log = logging.getLogger(__name__)

Arg = scripts.Arg


def function_name(script: str, version: int | None = None) -> str:
    """The FCALL name of `script`: ``queue_push`` → ``redline_queue_push``; of a version of its
    arguments, ``job_admit`` 2 → ``redline_job_admit_v2`` (see `Library`'s `versions`)."""
    return f"redline_{script}" if version is None else f"redline_{script}_v{version}"


def _clustered(client: object) -> bool:
    """On a cluster, the library is loaded (for other clients' FCALLs) but redline calls it as
    EVALSHA of the same script: redis-py finds FCALL's keys with COMMAND GETKEYS on one fixed
    node, so once that node dies every FCALL fails until restart (a master failover; found by
    tests/hardening/test_cluster.py). EVAL's keys it reads from the command itself."""
    return is_cluster_client(client)


_KEYS_OR_ARGV = re.compile(r"\b(KEYS|ARGV)\b")
_LOCAL = re.compile(r"^local (?:function )?([\w, ]+)", re.MULTILINE)


def _shared_parts(names: Iterable[str]) -> list[str]:
    """The parts `names` include that can live at the library's top level: those that use no
    KEYS or ARGV (those are each call's), define no name another such part defines, and use
    no name of a part that stays inline."""
    parts = list(dict.fromkeys(p for name in names for p in scripts.lua_body(name)[1]))
    text = {part: scripts.lua_source(part) for part in parts}
    defined = {part: _defined(text[part]) for part in parts}
    shared = [p for p in parts if not _KEYS_OR_ARGV.search(text[p])]
    shared = [p for p in shared if not any(defined[p] & defined[q] for q in shared if q != p)]
    while True:  # until no shared part uses a name of one left inline
        inline = {n for p in parts if p not in shared for n in defined[p]}
        kept = [p for p in shared if not any(re.search(rf"\b{n}\b", text[p]) for n in inline)]
        if kept == shared:
            return shared
        shared = kept


def _defined(text: str) -> set[str]:
    return {n.strip() for found in _LOCAL.findall(text) for n in found.split(",")}


def _body(script: str, shared: Sequence[str]) -> str:
    """`script`'s text inside its function: its included parts inline, but the shared ones."""
    body, parts = scripts.lua_body(script)
    inline = [scripts.lua_source(p) for p in parts if p not in shared]
    return "\n".join([*inline, body])


def _missing(exc: ResponseError) -> bool:
    return "function not found" in str(exc).lower()


class Library:
    """The Redis Functions library `name` made of `scripts`; `read_only` ones get the
    ``no-writes`` flag (so `FCALL_RO` and replicas accept them), `allow_oom` ones the
    ``allow-oom`` flag (they run when the server is at ``maxmemory``: without it a function that
    writes is refused there, even one that frees memory, such as taking from a queue).

    A script in `versions` is called by the name of its arguments' version
    (``redline_job_admit_v2``), and registered under its plain name too, for the callers of the
    versions before, whose arguments it still takes. A library name is one per server: an
    older process that loads its library over this one (``FUNCTION LOAD REPLACE``) then takes
    the versioned name away rather than putting its old body under the name this process calls;
    this process's next call finds its function missing and loads this library again, whose
    plain name serves the older process from then on."""

    def __init__(
        self,
        name: str,
        scripts: Iterable[str],
        read_only: Iterable[str] = (),
        allow_oom: Iterable[str] = (),
        versions: dict[str, int] | None = None,
    ) -> None:
        self.name = name
        self.scripts = tuple(scripts)
        self.read_only = frozenset(read_only)
        self.allow_oom = frozenset(allow_oom)
        self.versions = dict(versions or {})
        self._names = {s: function_name(s, self.versions.get(s)) for s in self.scripts}
        # Each client's mode, kept on the client itself (so it goes with the client), under
        # this attribute: absent until its first call, False when its calls are EVALSHAs (no
        # Functions there), True once the library is loaded, and for a blocking client whose
        # calls are plain FCALLs the `Held` channel they go over (`call_sync` finds it in one
        # look).
        self._mode = f"_redline_library_{name}"

    @cached_property
    def source(self) -> str:
        """The library's Lua text, as ``FUNCTION LOAD`` takes it. The parts the scripts include
        (`_<part>.lua`: helper functions) are defined once, at the library's top level, where
        they can be (see `_shared_parts`): a function's call then makes no closure for each
        of them (a tenth of the server's instructions for a `queue_pop` that finds nothing)."""
        shared = _shared_parts(self.scripts)
        lines = [f"#!lua name={self.name}", *(scripts.lua_source(part) for part in shared)]
        for script in self.scripts:
            flags = ""
            if script in self.read_only:
                flags = ", flags={'no-writes'}"
            elif script in self.allow_oom:
                flags = ", flags={'allow-oom'}"
            callback = f"function(KEYS, ARGV)\n{_body(script, shared)}\nend"
            names = [self._names[script]]
            if script in self.versions:  # one body under both names (see the class docstring)
                lines.append(f"local {self._names[script]} = {callback}")
                callback, names = self._names[script], [*names, function_name(script)]
            lines += [
                f"redis.register_function{{function_name='{name}', callback={callback}{flags}}}"
                for name in names
            ]
        return "\n".join(lines) + "\n"

    def uses_functions(self, client: AsyncClient | SyncClient) -> bool | None:
        """True: calls on `client` are FCALLs; False: EVALSHA; None: not decided yet."""
        mode: bool | Held | None = vars(client).get(self._mode)
        return None if mode is None else mode is not False

    def _loaded(self, client: object, error: ResponseError | None) -> bool:
        vars(client)[self._mode] = error is None
        if error is None:
            return True
        log.warning(
            "Redis Functions unavailable (%s); library=%s runs through EVALSHA", error, self.name
        )
        return False

    async def load(self, client: AsyncClient) -> bool:
        """``FUNCTION LOAD REPLACE`` the library; False when the server cannot (fallback)."""
        try:
            await client.function_load(self.source, replace=True)
        except ResponseError as exc:
            return self._loaded(client, exc)
        return self._loaded(client, None)

    def load_sync(self, client: SyncClient) -> bool:
        """Blocking twin of `load`."""
        try:
            client.function_load(self.source, replace=True)
        except ResponseError as exc:
            return self._loaded(client, exc)  # EVALSHA from now on (its kept channel dropped)
        return self._loaded(client, None)

    def command(
        self, client: AsyncClient, script: str, keys: Sequence[str], args: Sequence[Arg] = ()
    ) -> tuple[Arg, ...] | None:
        """The ``FCALL`` of `script` as a command to queue in a pipeline of `client`, or None
        where a call there is not a plain FCALL (library not loaded yet, the EVALSHA fallback,
        a cluster): then use `call`. A pipelined FCALL that finds the library missing fails
        like any command; `call` then loads it again."""
        if not vars(client).get(self._mode) or _clustered(client):
            return None
        return ("FCALL", self._names[script], len(keys), *keys, *args)

    @staticmethod
    def missing(reply: object) -> bool:
        """Whether `reply` (a pipelined `command`'s) is the error of a server that lacks the
        library (restarted without persistence, flushed): `call` loads it again."""
        return isinstance(reply, ResponseError) and _missing(reply)

    async def call(
        self,
        client: AsyncClient,
        script: str,
        keys: Sequence[str],
        args: Sequence[Arg] = (),
        channel: Batched | None = None,
    ) -> Any:
        """Run `script` with `keys` (one cluster slot) and `args`: FCALL, or EVALSHA; over
        `channel` (a `Batched` of `client`) when given, else the client's own connections."""
        mode: bool | None = vars(client).get(self._mode)
        if mode is None:
            mode = await self.load(client)
        if not mode or _clustered(client):
            return await _evalsha(client, script, keys, args, channel)
        command = ("FCALL", self._names[script], len(keys), *keys, *args)
        try:
            return await _send(client, command, channel)
        except ResponseError as exc:
            if not _missing(exc):
                raise
        log.info("library %s missing on the server (restarted?); loading it again", self.name)
        if not await self.load(client):
            return await _evalsha(client, script, keys, args, channel)
        return await _send(client, command, channel)

    def call_sync(
        self, client: SyncClient, script: str, keys: Sequence[str], args: Sequence[Arg] = ()
    ) -> Any:
        """Blocking twin of `call`. Once a client's calls are known to be plain FCALLs, its
        mode is the channel they go over (`_fcall_channel`): a call then makes no frame to find
        out again (a pop of one at a time made five: the mode's weak lookup, the cluster check,
        the function's name, the channel)."""
        channel: bool | Held | None = vars(client).get(self._mode)
        if type(channel) is not Held:
            channel = self._fcall_channel(client)
            if channel is None:
                return scripts.run_sync(client, script, keys, args)
        name = self._names.get(script) or function_name(script)
        command = ("FCALL", name, len(keys), *keys, *args)
        try:  # over the thread's held connection: no pool check-out per call (channels.py)
            return channel.call(command)
        except ResponseError as exc:
            if not _missing(exc):
                raise
        log.info("library %s missing on the server (restarted?); loading it again", self.name)
        if not self.load_sync(client):
            return scripts.run_sync(client, script, keys, args)
        return channel.call(command)

    def _fcall_channel(self, client: SyncClient) -> Held | None:
        """The channel `client`'s calls go over as FCALLs (loading the library on the first
        call), kept as its mode; None where they are EVALSHAs (no Functions, a cluster)."""
        mode: bool | None = vars(client).get(self._mode)
        if mode is None:
            mode = self.load_sync(client)
        if not mode or _clustered(client):
            return None
        channel: Held = held(client)
        vars(client)[self._mode] = channel
        return channel


async def _send(client: AsyncClient, command: tuple[Any, ...], channel: Batched | None) -> Any:
    if channel is None:
        return await client.execute_command(*command)
    return await channel.call(command)


async def _evalsha(
    client: AsyncClient,
    script: str,
    keys: Sequence[str],
    args: Sequence[Arg],
    channel: Batched | None,
) -> Any:
    if channel is None:
        return await scripts.run(client, script, keys, args)
    return await scripts.run_batched(client, script, keys, args, channel)
