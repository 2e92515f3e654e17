"""Redis URLs: the one place in redline that parses one (`parse_url`), and `mask_url`.

Forms understood (all take ``user:password@`` for ACL users; ``rediss`` means TLS):

- ``redis://host:6379/0``, ``rediss://host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=ca.pem``
- ``unix:///run/redis.sock?db=0``
- ``redis+cluster://host1:7000,host2:7001`` (any reachable nodes; the rest are discovered)
- ``redis+sentinel://host1:26379,host2:26379/mymaster/0`` (service name, then optional db)
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from redline.errors import ConnectionURLError

__all__ = ["RedisURL", "is_cluster", "mask_url", "parse_url"]

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
