"""`push(..., wait_replicas=N)`: each chunk's push and its ``WAIT`` on ONE connection.

``WAIT`` counts the replication offset of the connection that calls it, so it must follow the
push on the same connection, on the master that ran it: a standalone client sends both in one
pipeline. A cluster client would send ``WAIT`` to every node (each answering for a connection
that wrote nothing), so here the push script and ``WAIT`` go to the master owning the queue's
slot, in one pipeline on one of that node's connections, following MOVED/ASK/TRYAGAIN and a
failover a few times (the chunk sent again to the node a MOVED/ASK names, or by the slot map
read again) before the error reaches the caller; redirects that run out raise `ClusterError`,
as redis-py's own do. A chunk sent twice is at-least-once, as every retried push is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import ClusterNode as SyncNode
from redis.cluster import RedisCluster as SyncCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MovedError,
    NoScriptError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from redline.backoff import delay_for
from redline.errors import ReplicationError
from redline.queue.core import Call, keys_of
from redline.queue.replies import pushed_ids
from redline.scripting import scripts

__all__ = ["ATTEMPTS", "checked_reply", "push_on_cluster", "push_on_cluster_sync"]

ATTEMPTS = 5  # sends of one chunk before a redirect or connection error reaches the caller
# Errors after which the slot map is read again: the owner moved, failed over or is down.
_REFRESH = (MovedError, ClusterDownError, SlotNotCoveredError, ConnectionError, TimeoutError)
# ...and those after which the chunk is sent again (ASK: to the node named; MovedError is an
# AskError in redis-py, so the refresh cases are told apart by type).
_REDIRECTED = (*_REFRESH, AskError, TryAgainError)
_Node = TypeVar("_Node", ClusterNode, SyncNode)


def checked_reply(key: str, ids: list[str], results: Sequence[Any], replicas: int) -> Any:
    """The push script's reply from the results of ``[ASKING,] script, WAIT``: the first error
    is raised; fewer than `replicas` acknowledgements raise `ReplicationError` naming every id
    stored so far (`ids` of the earlier chunks, then this chunk's)."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    reply, acked = results[-2], int(results[-1])
    if acked < replicas:
        raise ReplicationError(key, [*ids, *pushed_ids(reply)], replicas, acked)
    return reply


def _commands(call: Call, replicas: int, ms: int, asking: bool) -> list[tuple[Any, ...]]:
    keys = keys_of(call.key).of_script(call.script)
    evalsha = ("EVALSHA", scripts.sha(call.script), len(keys), *keys, *call.args)
    return [*([("ASKING",)] if asking else []), evalsha, ("WAIT", replicas, ms)]


# -- asyncio ------------------------------------------------------------------------------------


async def push_on_cluster(client: AsyncCluster, call: Call, replicas: int, ms: int) -> list[Any]:
    """Results of ``[ASKING,] push, WAIT`` sent together to the master owning `call.key`."""
    await client.initialize()  # a no-op once the slot map is known
    redirect: ClusterNode | None = None  # the node a MOVED/ASK named, for the next send
    asking = False
    for attempt in range(1, ATTEMPTS + 1):
        try:
            node = redirect or _owner(client.get_node_from_key(call.key), call.key)
            return _raised_redirect(await _on_node(node, call, replicas, ms, asking))
        except _REDIRECTED as exc:
            _give_up(call.key, exc, attempt)
            if isinstance(exc, TryAgainError):  # a multi-key call while the slot migrates
                await asyncio.sleep(delay_for(attempt, 0.05, 1.0))
            elif not _is_ask(exc):  # the owner changed: read the slot map again
                await client.nodes_manager.initialize()
            redirect, asking = _named(client, exc), _is_ask(exc)
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _on_node(
    node: ClusterNode, call: Call, replicas: int, ms: int, asking: bool
) -> list[Any]:
    commands = _commands(call, replicas, ms, asking)
    results = await _pipeline(node, commands)
    if isinstance(results[-2], NoScriptError):  # first use on this node: load, send again
        await node.execute_command("SCRIPT", "LOAD", scripts.lua_source(call.script))
        results = await _pipeline(node, commands)
    return results


async def _pipeline(node: ClusterNode, commands: list[tuple[Any, ...]]) -> list[Any]:
    # ClusterNode.execute_pipeline writes all commands on one connection, then reads the replies.
    sent = [PipelineCommand(i, *command) for i, command in enumerate(commands)]
    await node.execute_pipeline(sent)
    return [command.result for command in sent]


# -- blocking -----------------------------------------------------------------------------------


def push_on_cluster_sync(cluster: SyncCluster, call: Call, replicas: int, ms: int) -> list[Any]:
    """Blocking twin of `push_on_cluster`."""
    client: Any = cluster  # redis-py's sync cluster client is untyped
    redirect: SyncNode | None = None
    asking = False
    for attempt in range(1, ATTEMPTS + 1):
        try:
            node = redirect or _owner(client.get_node_from_key(call.key), call.key)
            return _raised_redirect(_on_node_sync(client, node, call, replicas, ms, asking))
        except _REDIRECTED as exc:
            _give_up(call.key, exc, attempt)
            if isinstance(exc, TryAgainError):
                time.sleep(delay_for(attempt, 0.05, 1.0))
            elif not _is_ask(exc):
                client.nodes_manager.initialize()
            redirect, asking = _named(client, exc), _is_ask(exc)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _on_node_sync(
    client: Any, node: SyncNode, call: Call, replicas: int, ms: int, asking: bool
) -> list[Any]:
    # A pipeline of the node's own client: one connection; it loads the script if needed.
    pipe: Any
    with client.get_redis_connection(node).pipeline(transaction=False) as pipe:
        if asking:
            pipe.execute_command("ASKING")
        keys = keys_of(call.key).of_script(call.script)
        scripts.run_sync(pipe, call.script, keys, call.args)
        pipe.wait(replicas, ms)
        return list(pipe.execute(raise_on_error=False))


def _is_ask(exc: Exception) -> bool:
    return isinstance(exc, AskError) and not isinstance(exc, MovedError)


def _named(client: Any, exc: Exception) -> Any:
    """The node a MOVED or ASK reply names (trusted for the next send: the slot map may still
    be stale where it is read from), else None (routed by the slot map)."""
    if isinstance(exc, AskError):  # MovedError included
        return client.get_node(host=exc.host, port=exc.port)
    return None


def _give_up(key: str, exc: Exception, attempt: int) -> None:
    """After the last attempt: the error, MOVED/ASK as a ClusterError (what redis-py raises when
    its own redirects run out, and what callers retry)."""
    if attempt < ATTEMPTS:
        return
    if isinstance(exc, AskError):
        raise ClusterError(
            f"queue {key!r}: its slot was redirected {ATTEMPTS} times in a row (resharding or "
            "failover in progress); retry the push"
        ) from exc
    raise exc


def _owner(node: _Node | None, key: str) -> _Node:
    if node is None:
        not_covered: type[Exception] = SlotNotCoveredError  # untyped __init__ in redis-py 8.0
        raise not_covered(f"no node serves the slot of {key!r} yet")
    return node


def _raised_redirect(results: list[Any]) -> list[Any]:
    """`results`, unless the push was not run there (redirected, refused): then that error."""
    error = results[-2]
    if isinstance(error, _REDIRECTED):
        raise error
    return results
