"""hassets' file logic: a request for a path under a directory → a response, all in memory.

Content type by extension; ``ETag``/``If-None-Match`` and ``Last-Modified``/``If-Modified-Since``
(304); a single ``Range`` (206, or 416 when unsatisfiable); ``HEAD``; gzip for compressible
types when the client accepts it. A path that escapes the directory — ``..``, its encoded form
``%2e%2e``, a symlink pointing outside — gets 404 and a warning in the log.

Files found are remembered by URL path, small ones (≤ ``CACHE_BYTES``) with their bytes: a
request for a known path costs one ``stat`` of it, and the entry is used only while that names
the same file unchanged (device, inode, size, mtime); anything else is looked up again from
scratch, with every check. Inside ``with files.one_stat_per_path():`` (hassets wraps each batch
of requests in it) that ``stat`` is made once per path: the requests of one batch were popped
together, and a ``stat`` cost about as much as the rest of the answer.
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import mimetypes
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from redline.http.envelope import Headers, Request, Response, keep_body

__all__ = ["Asset", "StaticFiles"]

log = logging.getLogger(__name__)

_COMPRESSIBLE = re.compile(r"^(text/|application/(json|javascript|xml|.*\+xml)|image/svg)")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
GZIP_MIN = 256
CACHE_ENTRIES = 512  # paths remembered per StaticFiles
CACHE_BYTES = 64 * 1024  # files up to this size are kept in memory (so at most 32 MiB)

Identity = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


@dataclass(frozen=True)
class Asset:
    """A file found under the root: where it is and what its validators are.

    `probe` is the unresolved path that named it (symlinks not followed), `identity` what a
    ``stat`` of it gave, and `data` its bytes when small enough to keep."""

    path: Path
    size: int
    mtime: float
    etag: str
    content_type: str
    probe: str = ""
    identity: Identity | None = None
    data: bytes | None = field(default=None, repr=False)

    @cached_property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.mtime, usegmt=True)

    @cached_property
    def validators(self) -> Headers:
        """What every answer about this file carries (a 304 carries only these)."""
        return (
            ("etag", self.etag),
            ("last-modified", self.last_modified),
            ("accept-ranges", "bytes"),
        )

    @cached_property
    def gzip_etag(self) -> str:
        """The ETag of the gzipped answer (another representation, so another tag)."""
        return self.etag[:-1] + '-gz"'

    @cached_property
    def compressible(self) -> bool:
        return self.size >= GZIP_MIN and bool(_COMPRESSIBLE.match(self.content_type))

    @cached_property
    def headers(self) -> Headers:
        """The headers of a whole-file answer, but its length."""
        vary = (("vary", "accept-encoding"),) if self.compressible else ()
        return (*self.validators, ("content-type", self.content_type), *vary)

    @cached_property
    def kept_headers(self) -> Headers:
        """`headers` with the length of the kept bytes: a cached file's answer is built once."""
        return (*self.headers, ("content-length", str(len(self.data or b""))))

    def body(self) -> bytes:
        """The file's bytes (from memory when kept)."""
        return self.data if self.data is not None else _read(self.path)


def _identity(info: os.stat_result) -> Identity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _current(probe: str) -> Identity | None:
    try:
        return _identity(os.stat(probe))
    except OSError:
        return None


def _content_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    kind = guessed or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


@lru_cache(maxsize=256)
def _gzipped(path: Path, etag: str) -> bytes:  # etag in the key: a changed file misses
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)


# The request headers a file's answer depends on (`_conditions`).
_CONDITIONS = frozenset(
    ("if-none-match", "if-modified-since", "range", "if-range", "accept-encoding")
)


def _conditions(request: Request) -> dict[str, str]:
    """The first value of each of the request's `_CONDITIONS` headers, in one pass over its
    headers (not a `Request.header` scan for each: most requests carry none of them)."""
    found: dict[str, str] = {}
    for name, value in request.headers:
        if name in _CONDITIONS and name not in found:
            found[name] = value
    return found


def _accepts_gzip(accepted: str) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip."""
    for part in accepted.split(","):
        coding, _, quality = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return quality.strip().replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _byte_range(spec: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one ``bytes=`` range, or None when unsatisfiable."""
    found = _RANGE.match(spec.strip())
    if not found or found.groups() == ("", ""):
        return None
    first, last = found.groups()
    if first == "":
        length = int(last)
        return (max(size - length, 0), size - 1) if length and size else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end else None


class StaticFiles:
    """Serves files under `root`; `respond(request)` never raises for a bad path."""

    def __init__(self, root: Path | str, index: str = "index.html") -> None:
        self.root = Path(root).resolve()
        self.index = index
        if not self.root.is_dir():
            raise NotADirectoryError(f"hassets root {str(root)!r} is not a directory")
        self._known: dict[str, Asset] = {}
        self._checked: set[str] | None = None  # paths stat'ed in this batch, when batching

    @contextmanager
    def one_stat_per_path(self) -> Iterator[None]:
        """Within the block, a known path is checked (one ``stat``) the first time only: for
        requests answered together, such as one popped batch."""
        self._checked = set()
        try:
            yield
        finally:
            self._checked = None

    def respond(self, request: Request) -> Response:
        """The response for `request` (GET or HEAD of a file under the root)."""
        if request.method not in ("GET", "HEAD"):
            return Response.text(
                request.id, "method not allowed\n", 405, headers=[("allow", "GET, HEAD")]
            )
        wanted = request.params.get("path", request.route_path)
        asset = self.find(wanted, request)
        if asset is None:
            return Response.text(request.id, "not found\n", 404)
        return self._serve(request, asset)

    def find(self, wanted: str, request: Request | None = None) -> Asset | None:
        """The file for URL path `wanted` (already percent-decoded), or None."""
        known, checked = self._known.get(wanted), self._checked
        if known is not None and checked is not None and wanted in checked:
            return known
        if known is None or _current(known.probe) != known.identity:
            known = self._lookup(wanted, request)
            if known is None:
                self._known.pop(wanted, None)
                return None
            if len(self._known) >= CACHE_ENTRIES:
                del self._known[next(iter(self._known))]
            self._known[wanted] = known
        if checked is not None:
            checked.add(wanted)
        return known

    def _lookup(self, wanted: str, request: Request | None) -> Asset | None:
        parts = [p for p in wanted.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts or "\x00" in wanted:
            return self._refused(wanted, "dot-dot segment", request)
        probe = self.root.joinpath(*parts)
        target = probe.resolve()
        if target != self.root and not target.is_relative_to(self.root):
            return self._refused(wanted, "resolves outside the root", request)
        try:
            if target.is_dir():
                probe, target = probe / self.index, target / self.index
            if not target.is_file():  # never open a FIFO or a device: it could block
                return None
            return _open(target, str(probe))
        except OSError:
            return None

    def _refused(self, wanted: str, why: str, request: Request | None) -> Asset | None:
        who = f" id={request.id} client={request.client}" if request else ""
        log.warning("hassets refused path=%r reason=%r%s", wanted, why, who)
        return None

    def _serve(self, request: Request, asset: Asset) -> Response:
        conditions = _conditions(request)
        if conditions and _not_modified(conditions, asset):
            return Response(request.id, 304, asset.validators)
        spec = conditions.get("range")
        if spec is not None and conditions.get("if-range") in (None, asset.etag):
            return self._partial(request, asset, spec, list(asset.validators))
        if asset.compressible and _accepts_gzip(conditions.get("accept-encoding", "")):
            gz_etag = ("etag", asset.gzip_etag)
            headers = [gz_etag, *asset.headers[1:], ("content-encoding", "gzip")]
            return _finish(request, 200, headers, _gzipped(asset.path, asset.etag))
        if asset.data is not None:  # the common case, a kept file: nothing to build
            body = b"" if request.method == "HEAD" else asset.data
            return Response(request.id, 200, asset.kept_headers, body)
        return _finish(request, 200, list(asset.headers), asset.body())

    def _partial(
        self, request: Request, asset: Asset, spec: str, headers: list[tuple[str, str]]
    ) -> Response:
        span = _byte_range(spec, asset.size)
        if span is None:
            headers.append(("content-range", f"bytes */{asset.size}"))
            return Response(request.id, 416, tuple(headers))
        first, last = span
        headers.append(("content-type", asset.content_type))
        headers.append(("content-range", f"bytes {first}-{last}/{asset.size}"))
        with asset.path.open("rb") as handle:
            handle.seek(first)
            body = handle.read(last - first + 1)
        return _finish(request, 206, headers, body)


def _not_modified(conditions: dict[str, str], asset: Asset) -> bool:
    tags = conditions.get("if-none-match")
    if tags is not None:
        offered = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return "*" in offered or bool(offered & {asset.etag, asset.gzip_etag})
    since = conditions.get("if-modified-since")
    if since:
        try:
            when = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(asset.mtime) <= when
    return False


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _open(target: Path, probe: str) -> Asset | None:
    """The Asset of regular file `target` (None for anything else), its bytes kept if small;
    validators and identity come from the open file, so they match the bytes read."""
    with target.open("rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        data = handle.read() if info.st_size <= CACHE_BYTES else None
    if data:
        keep_body(data)  # its answers' envelopes reuse its base64 (envelope.keep_body)
    etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
    identity = _identity(info)
    kind = _content_type(target)
    return Asset(target, info.st_size, info.st_mtime, etag, kind, probe, identity, data)


def _finish(request: Request, status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    """HEAD keeps the headers (Content-Length included) and drops the body."""
    headers.append(("content-length", str(len(body))))
    return Response(request.id, status, tuple(headers), b"" if request.method == "HEAD" else body)
