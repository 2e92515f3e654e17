from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import pytest

from redline.http.envelope import Request
from redline.http.files import StaticFiles

TEXT = "hello, world\n" * 40  # 520 bytes: above the gzip threshold


@pytest.fixture
def site(tmp_path: Path) -> StaticFiles:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "a.txt").write_text(TEXT)
    (root / "data.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "index.html").write_text("sub")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(root / "a.txt", root / "inside.txt")
    return StaticFiles(root)


def get(path: str, *headers: tuple[str, str], method: str = "GET") -> Request:
    return Request("r1", method, path, headers=tuple(headers))


def test_serves_a_file_with_type_and_validators(site: StaticFiles) -> None:
    response = site.respond(get("/data.bin"))
    assert response.status == 200 and response.body == bytes(range(256))
    assert response.header("content-type") == "application/octet-stream"
    assert response.header("etag") and response.header("last-modified")
    assert response.header("content-length") == "256"


def test_directory_serves_its_index(site: StaticFiles) -> None:
    assert site.respond(get("/")).body == b"<h1>home</h1>"
    assert site.respond(get("/sub/")).body == b"sub"
    assert site.respond(get("/")).header("content-type") == "text/html; charset=utf-8"


def test_if_none_match_and_if_modified_since_give_304(site: StaticFiles) -> None:
    first = site.respond(get("/data.bin"))
    etag, modified = first.header("etag"), first.header("last-modified")
    assert etag and modified
    again = site.respond(get("/data.bin", ("if-none-match", etag)))
    assert again.status == 304 and again.body == b""
    assert site.respond(get("/data.bin", ("if-modified-since", modified))).status == 304
    assert site.respond(get("/data.bin", ("if-none-match", '"other"'))).status == 200


@pytest.mark.parametrize(
    "spec, first, last",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=250-", 250, 255),
        ("bytes=-6", 250, 255),
        ("bytes=10-999", 10, 255),
    ],
)
def test_range_gives_206(site: StaticFiles, spec: str, first: int, last: int) -> None:
    response = site.respond(get("/data.bin", ("range", spec)))
    assert response.status == 206
    assert response.body == bytes(range(256))[first : last + 1]
    assert response.header("content-range") == f"bytes {first}-{last}/256"


def test_if_range_and_the_first_of_repeated_headers_decide(site: StaticFiles) -> None:
    etag = site.respond(get("/data.bin")).header("etag")
    assert etag
    same = site.respond(get("/data.bin", ("Range", "bytes=0-9"), ("If-Range", etag)))
    assert (same.status, same.body) == (206, bytes(range(10)))
    changed = site.respond(get("/data.bin", ("range", "bytes=0-9"), ("if-range", '"old"')))
    assert (changed.status, changed.body) == (200, bytes(range(256)))  # the whole, current file
    repeated = site.respond(get("/data.bin", ("range", "bytes=0-1"), ("range", "bytes=0-5")))
    assert repeated.body == bytes(range(2))  # the first value of a header counts


@pytest.mark.parametrize("spec", ["bytes=300-", "bytes=9-3", "bytes=-0", "lines=1-2"])
def test_unsatisfiable_range_gives_416(site: StaticFiles, spec: str) -> None:
    response = site.respond(get("/data.bin", ("range", spec)))
    assert response.status == 416
    assert response.header("content-range") == "bytes */256"


def test_head_has_headers_but_no_body(site: StaticFiles) -> None:
    response = site.respond(get("/data.bin", method="HEAD"))
    assert response.status == 200 and response.body == b""
    assert response.header("content-length") == "256"


def test_gzip_for_text_when_accepted(site: StaticFiles) -> None:
    plain = site.respond(get("/a.txt"))
    assert plain.header("content-encoding") is None and plain.body == TEXT.encode()
    zipped = site.respond(get("/a.txt", ("accept-encoding", "br, gzip;q=0.8")))
    assert zipped.header("content-encoding") == "gzip"
    assert gzip.decompress(zipped.body) == TEXT.encode()
    assert zipped.header("vary") == "accept-encoding"
    refused = site.respond(get("/a.txt", ("accept-encoding", "gzip;q=0")))
    assert refused.header("content-encoding") is None
    binary = site.respond(get("/data.bin", ("accept-encoding", "gzip")))
    assert binary.header("content-encoding") is None


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2E%2E/%2e%2e/secret.txt",
        "/link.txt",
        "/..%2fsecret.txt",
        "/%00",
    ],
)
def test_escapes_get_404_and_are_logged(
    site: StaticFiles, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="redline.http.files"):
        response = site.respond(get(path))
    assert response.status == 404 and b"secret" not in response.body
    assert "hassets refused" in caplog.text


def test_symlink_inside_the_root_is_served(site: StaticFiles) -> None:
    assert site.respond(get("/inside.txt")).body == TEXT.encode()


def test_missing_file_and_other_methods(site: StaticFiles) -> None:
    assert site.respond(get("/nope.txt")).status == 404
    response = site.respond(get("/a.txt", method="POST"))
    assert response.status == 405 and response.header("allow") == "GET, HEAD"


def test_router_param_path_is_used_when_present(site: StaticFiles) -> None:
    request = Request("r1", "GET", "/static/a.txt", params={"path": "a.txt"})
    assert site.respond(request).body == TEXT.encode()


def test_a_changed_file_is_served_anew(site: StaticFiles) -> None:
    first = site.respond(get("/data.bin"))
    path = site.root / "data.bin"
    path.write_bytes(b"new bytes")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later mtime
    again = site.respond(get("/data.bin"))
    assert again.body == b"new bytes" and again.header("etag") != first.header("etag")
    path.unlink()
    assert site.respond(get("/data.bin")).status == 404


def test_one_batch_shares_a_stat_per_path_and_the_next_sees_the_change(
    site: StaticFiles,
) -> None:
    path = site.root / "data.bin"
    with site.one_stat_per_path():
        first = site.respond(get("/data.bin"))
        path.write_bytes(b"new bytes")
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        same_batch = site.respond(get("/data.bin"))
    assert same_batch.body == first.body == bytes(range(256))
    with site.one_stat_per_path():
        next_batch = site.respond(get("/data.bin"))
        path.unlink()
        still = site.respond(get("/data.bin"))
    assert next_batch.body == still.body == b"new bytes"
    assert site.respond(get("/data.bin")).status == 404


def test_a_symlink_pointed_outside_after_being_served_is_refused(
    site: StaticFiles, caplog: pytest.LogCaptureFixture
) -> None:
    assert site.respond(get("/inside.txt")).body == TEXT.encode()
    link = site.root / "inside.txt"
    link.unlink()
    os.symlink(site.root.parent / "secret.txt", link)
    with caplog.at_level(logging.WARNING, logger="redline.http.files"):
        response = site.respond(get("/inside.txt"))
    assert response.status == 404 and "hassets refused" in caplog.text


def test_a_large_file_is_read_each_time(site: StaticFiles) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB: above what is kept in memory
    (site.root / "big.bin").write_bytes(big)
    response = site.respond(get("/big.bin"))
    assert response.body == big and response.header("content-length") == str(len(big))
    assert site.respond(get("/big.bin", ("range", "bytes=-3"))).body == big[-3:]
