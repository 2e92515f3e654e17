"""Services run as ACL users limited to their keys and commands: the rules of docs/acl.md.

The rules are read from docs/acl.md itself, so the page and the test cannot drift apart.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redline.connection import connect
from redline.queue import ReliableQueue
from tests.hardening.support import ROOT
from tests.helpers import spawn, stop, wait_for
from tests.servers import ServerProcess

PASSWORD = "acl-test-pw"
RENEW = ("--set", "serviceRenew=1", "--set", "popTimeout=0.5")  # exercise ticks and metrics


def acl_rules() -> dict[str, str]:
    """User name → its ``ACL SETUSER`` line, from docs/acl.md."""
    text = (ROOT / "docs" / "acl.md").read_text()
    lines = re.findall(r"^ACL SETUSER .+$", text, re.MULTILINE)
    return {line.split()[2]: line for line in lines}


@pytest.fixture(params=["valkey", "redis-server"])
def acl_server(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """An admin client of a server (embedded Valkey, then Debian's Redis) with the users."""
    binary = None if request.param == "valkey" else shutil.which(request.param)
    if request.param != "valkey" and binary is None:
        pytest.skip(f"needs `{request.param}` on PATH (apt-get install redis-server)")
    srv = ServerProcess(binary=binary).start()
    admin = srv.client()
    old = admin.info("server")["redis_version"] < "7.2"  # CLIENT SETINFO came in 7.2
    for line in acl_rules().values():
        words = line.replace(">secret", f">{PASSWORD}").split()
        admin.execute_command(*[w for w in words if not (old and w == "+client|setinfo")])
    admin.execute_command("ACL", "LOG", "RESET")
    yield admin
    srv.close()


def _url(admin: redis.Redis, user: str) -> str:
    port = admin.connection_pool.connection_kwargs["port"]
    return f"redis://{user}:{PASSWORD}@127.0.0.1:{port}/0"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _denials(admin: redis.Redis) -> list[object]:
    return list(admin.execute_command("ACL", "LOG"))


def test_docs_list_a_rule_set_per_service() -> None:
    assert set(acl_rules()) == {"orders-app", "orders-app-eval", "orders-producer", "jobs-mpush"}


@pytest.mark.parametrize("user", ["orders-app", "orders-app-eval"])
async def test_reliable_queue_under_its_acl_user(acl_server: redis.Redis, user: str) -> None:
    client = connect(_url(acl_server, user))
    queue = ReliableQueue(client, lease=0.2)
    assert len(await queue.push("orders", b"a", b"b", b"c")) == 3
    first = await queue.pop("orders", count=2)
    assert await queue.ack(first[0]) == [first[0].id]
    assert await queue.nack(first[1], delay=0)
    assert await queue.dead_letter((await queue.pop("orders", block=1))[0], reason="test")
    assert await queue.pop("orders", count=5, block=1)  # one left: leased, never acked
    assert [m.payload for m in await queue.inspect("orders", pending=True)]
    assert await queue.recover("orders", elapsed=0) == 1
    dead = await queue.dead("orders")
    assert await queue.requeue("orders", *[m.id for m in dead]) == 1
    drained = 0
    while batch := await queue.pop("orders", count=5):
        drained += len(await queue.ack(*batch))
    assert drained == 2 and await queue.purge("orders") == 0
    refused = [_text(d[b"object"]) for d in _denials(acl_server)]
    assert refused == ([] if user == "orders-app" else ["function|load"]), refused
    with pytest.raises(redis.exceptions.NoPermissionError):
        await client.get("not-orders")  # the user really is limited
    await client.aclose()


async def test_producer_under_its_acl_user(acl_server: redis.Redis) -> None:
    client = connect(_url(acl_server, "orders-producer"))
    assert len(await ReliableQueue(client).push("orders", b"x", b"y")) == 2
    with pytest.raises(
        redis.exceptions.ResponseError, match=r"no permissions|can.t run this command"
    ):
        await ReliableQueue(client).pop("orders")  # a producer is not a consumer
    await client.aclose()
    assert acl_server.llen("orders") == 2


def test_mpush_under_its_acl_user(acl_server: redis.Redis, tmp_path: Path) -> None:
    url = _url(acl_server, "jobs-mpush")
    outs = json.dumps(["jobs:a", "jobs:b"])
    log = tmp_path / "mpush.log"
    proc = spawn(
        "mpush", "--redis", url, "--set", "in=jobs", "--set", f"out={outs}", *RENEW, log=log
    )
    try:
        acl_server.lpush("jobs", *[f"m{i}" for i in range(100)])
        wait_for(lambda: acl_server.llen("jobs:a") == acl_server.llen("jobs:b") == 100, 30)
        renewed = acl_server.hget("{jobs}:service:1", "renewed")
        wait_for(lambda: acl_server.hget("{jobs}:service:1", "renewed") != renewed, 30)
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()[-3000:]
    assert acl_server.lrange("jobs:a", 0, -1) == [f"m{i}".encode() for i in range(100)][::-1]
    assert _denials(acl_server) == [], _denials(acl_server)
