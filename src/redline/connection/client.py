"""Redis URL → client. The one place in redline that parses a URL.

Forms understood (all take ``user:password@`` for ACL users; ``rediss`` means TLS):

- ``redis://host:6379/0``, ``rediss://host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=ca.pem``
- ``unix:///run/redis.sock?db=0``
- ``redis+cluster://host1:7000,host2:7001`` (any reachable nodes; the rest are discovered)
- ``redis+sentinel://host1:26379,host2:26379/mymaster/0`` (service name, then optional db)
"""

from __future__ import annotations

import asyncio
import functools
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
import redis.utils

from redline.connection.internals import pack_command, reply_error, sentinels_of, stream_transport
from redline.connection.pool import MAX_CONNECTIONS, POOL_TIMEOUT, AsyncBlockingPool, BlockingPool
from redline.errors import ConnectionURLError

__all__ = [
    "AsyncClient",
    "Command",
    "HeldConnection",
    "SyncClient",
    "connect",
    "connect_sync",
    "is_cluster",
    "is_cluster_client",
    "mask_url",
    "parse_url",
    "run_commands",
    "text",
]

AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.RedisCluster"
SyncClient: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"

_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


@dataclass(frozen=True)
class RedisURL:
    """A parsed Redis URL: which kind of deployment, where, and how to authenticate."""

    url: str
    mode: str  # "standalone" | "cluster" | "sentinel"
    tls: bool
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    db: int = 0
    service: str = ""
    options: dict[str, str] = field(default_factory=dict)


def parse_url(url: str) -> RedisURL:
    """Parse and check `url`; raise ConnectionURLError saying what is wrong and what is expected."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConnectionURLError(
            f"unsupported Redis URL scheme {parts.scheme!r} in {mask_url(url)!r}: "
            f"expected one of {', '.join(s + '://' for s in _SCHEMES)}"
        )
    base, _, kind = parts.scheme.partition("+")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    options = dict(urllib.parse.parse_qsl(parts.query))
    if kind == "":
        db_text = options.get("db", "0") if base == "unix" else parts.path
        return RedisURL(
            url,
            "standalone",
            base == "rediss",
            (),
            username,
            password,
            _db(db_text, url),
            options=options,
        )
    nodes = tuple(_node(item, url) for item in hostlist.split(",") if item)
    if not nodes:
        raise ConnectionURLError(f"no host:port in {mask_url(url)!r}")
    segments = [s for s in parts.path.split("/") if s]
    if kind == "cluster":
        return RedisURL(
            url, "cluster", base == "rediss", nodes, username, password, options=options
        )
    if not segments:
        raise ConnectionURLError(
            f"sentinel URL {mask_url(url)!r} names no service: "
            "expected redis+sentinel://host:26379/<service>[/db]"
        )
    db = _db("/" + segments[1], url) if len(segments) > 1 else 0
    return RedisURL(
        url, "sentinel", base == "rediss", nodes, username, password, db, segments[0], options
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, sep, password = userinfo.partition(":")
    unquote = urllib.parse.unquote
    if not sep:
        return None, unquote(user)
    return (unquote(user) or None), unquote(password)


def _node(item: str, url: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionURLError(f"expected host:port, got {item!r} in {mask_url(url)!r}")
    return host.strip("[]"), int(port)


def _db(path: str, url: str) -> int:
    text = path.strip("/") or "0"
    if not text.isdigit():
        raise ConnectionURLError(f"database must be a number, got {text!r} in {mask_url(url)!r}")
    return int(text)


def mask_url(url: str) -> str:
    """`url` with its password replaced by ``***`` (safe to log or show)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def is_cluster(url: str) -> bool:
    return parse_url(url).mode == "cluster"


def is_cluster_client(client: object) -> bool:
    """True for a Redis Cluster client, asyncio or blocking. Answered once per class: redis-py's
    cluster classes are typing protocols, whose isinstance checks cost ~1 µs (a consumer step
    made three)."""
    kind = type(client)
    known = _CLUSTER_CLASSES.get(kind)
    if known is None:
        clusters = (redis.asyncio.RedisCluster, redis.cluster.RedisCluster)
        known = _CLUSTER_CLASSES[kind] = issubclass(kind, clusters)
    return known


_CLUSTER_CLASSES: dict[type, bool] = {}


def text(reply: object, errors: str = "strict") -> str:
    """A reply as str: bytes decoded as UTF-8 (`errors` as for `bytes.decode`), anything else
    through ``str()``. The one decoding helper: redline's clients return bytes."""
    return reply.decode(errors=errors) if isinstance(reply, bytes) else str(reply)


def _tls_kwargs(parsed: RedisURL) -> dict[str, Any]:
    if not parsed.tls:
        return {}
    kwargs: dict[str, Any] = {"ssl": True}
    for name in ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in parsed.options:
            kwargs[name] = parsed.options[name]
    return kwargs


@dataclass(frozen=True)
class _Flavour:
    """The client classes of one redis-py API (asyncio or blocking)."""

    plain: Any
    cluster: Any
    node: Any
    sentinel: Any
    pool: Any


_ASYNC = _Flavour(
    redis.asyncio.Redis,
    redis.asyncio.RedisCluster,
    redis.asyncio.cluster.ClusterNode,
    redis.asyncio.sentinel.Sentinel,
    AsyncBlockingPool,
)
_SYNC = _Flavour(
    redis.Redis,
    redis.cluster.RedisCluster,
    redis.cluster.ClusterNode,
    redis.sentinel.Sentinel,
    BlockingPool,
)


def _blocking_pool(url: str, flavour: _Flavour, options: dict[str, Any]) -> Any:
    """A single server's pool: a command waits for a free connection (`redline.connection.pool`)."""
    return flavour.pool.from_url(
        url,
        max_connections=options.pop("max_connections", MAX_CONNECTIONS),
        timeout=options.pop("pool_timeout", POOL_TIMEOUT),
        **options,
    )


def _client(url: str, flavour: _Flavour, options: dict[str, Any]) -> Any:
    parsed = parse_url(url)
    if parsed.mode != "standalone":  # cluster and Sentinel pools keep redis-py's (docs)
        options.pop("pool_timeout", None)
    # Blocking connections take a packer; the cluster client refuses the option (its nodes
    # keep redis-py's). The asyncio ones are given a connection class below.
    if flavour is _SYNC and parsed.mode != "cluster" and redis.utils.HIREDIS_AVAILABLE:
        options = {"command_packer": _PACKER, **options}
    auth: dict[str, Any] = {"username": parsed.username, "password": parsed.password}
    if parsed.mode == "cluster":
        nodes = [flavour.node(host, port) for host, port in parsed.nodes]
        client = flavour.cluster(startup_nodes=nodes, **auth, **_tls_kwargs(parsed), **options)
    elif parsed.mode == "sentinel":
        sentinel = flavour.sentinel(
            list(parsed.nodes),
            sentinel_kwargs={**auth, **_tls_kwargs(parsed)},  # rediss: the sentinels too
            db=parsed.db,
            **auth,
            **_tls_kwargs(parsed),
            **options,
        )
        kind = _SentinelClient if flavour is _ASYNC else _SyncSentinelClient
        client = sentinel.master_for(parsed.service, redis_class=kind)
    else:
        client = flavour.plain.from_pool(_blocking_pool(url, flavour, options))
    if flavour is _ASYNC and redis.utils.HIREDIS_AVAILABLE:
        _pack_with_hiredis(client)
    return client


def _pack_with_hiredis(client: Any) -> None:
    """Make the connections `client` will open (it has opened none yet) pack with hiredis.

    A cluster client keeps its connection class in the keyword arguments it shares with its
    nodes manager (nodes found later are made from them) and in each startup node; the others
    in their pool. tests/test_connection.py checks the connections a client really opened."""
    if is_cluster_client(client):
        kwargs = client.connection_kwargs
        kwargs["connection_class"] = _hiredis_packing(kwargs["connection_class"])
        for node in client.startup_nodes:
            node.connection_class = kwargs["connection_class"]
    else:
        pool = client.connection_pool
        pool.connection_class = _hiredis_packing(pool.connection_class)


class _SentinelClient(redis.asyncio.Redis):
    """The asyncio client of a Sentinel-managed primary; closing it also closes its links to the
    sentinels (redis-py's `Sentinel` keeps them open, and has no close of its own)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in sentinels_of(self.connection_pool):
            await sentinel.aclose()


class _SyncSentinelClient(redis.Redis):
    """The blocking counterpart of `_SentinelClient`: closing it closes the sentinels' links."""

    def close(self) -> None:
        super().close()
        for sentinel in sentinels_of(self.connection_pool):
            sentinel.close()


def _pack(*args: Any) -> list[bytes]:
    """Packs a command with hiredis directly. redis-py's asyncio connections pack in Python,
    re-joining the buffer for each argument: an LPUSH of 50 payloads took 74 µs there and takes
    23 µs here, a queue pop acking 50 messages 112 µs against 46 µs (a 2-core VM;
    `bench/http.py` is where it shows). Its blocking ones call hiredis after rebuilding every
    argument in a generator (~0.25 µs each: a tenth of a queue consumer's own CPU at batch
    100). Only redis-py's rare cases need its serializer: a command name with a space
    ("CLIENT SETNAME"), and bytearray or memoryview arguments (TypeError here)."""
    name = args[0]
    if " " not in name if isinstance(name, str) else b" " not in name:
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass
    return pack_command(*args)


class _HiredisPacker:
    """The packer blocking connections take (``command_packer``)."""

    pack = staticmethod(_pack)


_PACKER = _HiredisPacker()


class _HiredisPacking:
    """Mixed into an asyncio connection class, before redis-py's: packs with `_pack`."""

    pack_command = staticmethod(_pack)


@functools.cache
def _hiredis_packing(connection_class: type) -> type:
    """`connection_class` (plain, TLS or Unix socket) packing commands with hiredis."""
    return type(connection_class.__name__, (_HiredisPacking, connection_class), {})


def connect(url: str, **options: Any) -> AsyncClient:
    """An asyncio client for `url`. Extra keyword arguments go to redis-py (timeouts, …).

    `max_connections` (default 100) bounds the connections the client opens. On a single
    server a command finding them all busy waits up to `pool_timeout` seconds (default 20)
    for one to come free, then raises `redline.connection.pool.PoolTimeoutError`; so an
    ``asyncio.gather`` of thousands of calls on one client succeeds. A cluster client's limit
    is per node, and a cluster's or Sentinel's pool refuses the command at once
    (redis-py's ``MaxConnectionsError``): raise `max_connections` there (README,
    "Connections")."""
    return cast(AsyncClient, _client(url, _ASYNC, dict(options)))


def connect_sync(url: str, **options: Any) -> SyncClient:
    """A blocking client for `url` (for scripts, the CLI and the sync queue API); its pool
    as `connect`'s."""
    return cast(SyncClient, _client(url, _SYNC, dict(options)))


Command = tuple[Any, ...]


async def run_commands(
    client: AsyncClient, commands: Sequence[Command], raise_on_error: bool = False
) -> list[Any]:
    """Run `commands` in one pipeline (one round trip on a single server); each result is the
    reply or the exception the command got (`raise_on_error`: the first exception is raised,
    once every reply is read)."""
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=raise_on_error))


class HeldConnection:
    """One connection of a client's pool, kept by a loop that makes one call at a time (a
    consumer's `ReliableQueue.pop_after`, the importer's push and reply loops): `run` writes a
    list of commands at once and reads their raw replies in order.

    Two costs of redis-py's asyncio path are left out. It checks a connection out of the pool
    for every call (a lock, a check for unread data, observability counters): about 300 of a
    consumer step's 750 µs on a 2-core VM. And it reads replies through a StreamReader, its
    parser and their checks: a PING cost 186 µs of client CPU that way, 122 µs with the replies
    fed from the socket straight into hiredis, as `_Replies` does (the connection is made,
    authenticated and closed by redis-py; only its reading is taken over). Any error but a
    command's own closes the connection, and the next `run` takes a fresh one; closing the
    client closes it too. On a cluster client `run` is `run_commands`, whose replies go through
    redis-py's callbacks."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._connection: Any = None
        self._replies: _Replies | None = None

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The reply of each command, or the `ResponseError` it got."""
        if not commands:
            return []  # nothing to write, so no reply would ever come
        if is_cluster_client(self.client):
            return await run_commands(self.client, commands)
        pool = cast(redis.asyncio.Redis, self.client).connection_pool
        if self._connection is None:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            self._connection, self._replies = connection, _Replies.take_over(connection)
        connection, replies = self._connection, self._replies
        assert replies is not None
        try:
            return await replies.run(connection.pack_commands(commands), len(commands))
        except BaseException:  # timeouts, lost connections, cancellation midway: start over
            self._connection = self._replies = None
            await connection.disconnect()
            await pool.release(connection)
            raise


class _Replies(asyncio.Protocol):
    """The reading side of a held connection: bytes from the socket go straight into a hiredis
    reader, and `run` returns once the replies it waits for are complete."""

    def __init__(self, transport: asyncio.Transport, reader: hiredis.Reader, stream: Any) -> None:
        self.transport = transport
        self.reader = reader
        self.stream = stream  # redis-py's protocol, told of the close it waits for
        self.replies: list[Any] = []
        self.wanted = 0
        self.waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None

    @classmethod
    def take_over(cls, connection: Any) -> _Replies:
        """Read `connection`'s replies from now on (it is idle: nothing is left unread)."""
        options: dict[str, Any] = {
            "replyError": reply_error,
            "protocolError": redis.exceptions.InvalidResponse,
        }
        if connection.encoder.decode_responses:
            options["encoding"] = connection.encoder.encoding
            options["errors"] = connection.encoder.encoding_errors
        transport = stream_transport(connection)
        replies = cls(transport, hiredis.Reader(**options), transport.get_protocol())
        transport.set_protocol(replies)
        return replies

    async def run(self, data: list[bytes], wanted: int) -> list[Any]:
        if self.lost is not None:
            raise self.lost
        self.replies, self.wanted = [], wanted
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.writelines(data)
        await self.waiter
        return self.replies

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while len(self.replies) < self.wanted:
                reply = self.reader.gets()
                if reply is False:
                    return
                if not isinstance(reply, hiredis.PushNotification):  # RESP3 out-of-band
                    self.replies.append(reply)
        except redis.exceptions.InvalidResponse as exc:  # not RESP: this link is done
            self._wake(exc)
            self.transport.close()
            return
        self._wake(None)

    def eof_received(self) -> bool:
        self._wake(redis.exceptions.ConnectionError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._wake(redis.exceptions.ConnectionError(f"connection lost: {exc or 'closed'}"))
        if self.stream is not None:
            self.stream.connection_lost(exc)
            self.stream = None

    def _wake(self, error: Exception | None) -> None:
        if error is not None and self.lost is None:
            self.lost = error
        if self.waiter is not None and not self.waiter.done():
            if error is None:
                self.waiter.set_result(None)
            else:
                self.waiter.set_exception(error)
