from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redline.connection import AsyncClient
from redline.keys import derived
from redline.rquery.service import RQueryConfig, RQueryService, build
from redline.runtime import run_service
from redline.runtime.lifecycle import ids_key, instance_key
from redline.runtime.metrics import read_metrics
from redline.services.pending import dead_key, pending_key, registry_key
from tests.helpers import kill_holding, spawn, stop, wait_for

SEED = {
    "parameters": {"articleId": 12345},
    "commands": [
        {"command": "hget article:$articleId section", "save": "section"},
        {"command": "hget section:$section label", "save": "label"},
    ],
}


@pytest.fixture
async def service(redis_url: str, aredis: AsyncClient) -> AsyncIterator[RQueryService]:
    await aredis.hset("article:12345", "section", "news")
    await aredis.hset("section:news", "label", "News")
    config = RQueryConfig(
        redis=redis_url, popTimeout=0.5, replyPrefixes=["reply:"], serviceNamespace="demo:rq"
    )
    svc, hooks = build(config)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(svc, config, hooks, stopping))
    yield svc
    stopping.set()
    await asyncio.wait_for(task, 10)


async def ask(client: AsyncClient, request: bytes | str | dict[str, Any], reply: str) -> Any:
    raw = request if isinstance(request, bytes | str) else json.dumps(request)
    await client.lpush("rquery:in", raw)
    popped = await client.brpop([reply], 10)  # type: ignore[arg-type]
    assert popped is not None, f"no reply on {reply}"
    return json.loads(popped[1])


async def test_answers_the_seed_request_on_its_reply_list(
    service: RQueryService, aredis: AsyncClient
) -> None:
    reply = await ask(aredis, {"id": "r1", "reply": "reply:1", **SEED}, "reply:1")
    assert reply == {"id": "r1", "values": {"section": "news", "label": "News"}}
    assert await aredis.hget(f"demo:rq:{svc_id(service)}", "service") == b"rquery"


def svc_id(service: RQueryService) -> str:
    return service.mine.rsplit(":", 1)[1]


async def test_registered_counted_and_stopped_by_deleting_its_hash(
    redis_url: str, aredis: AsyncClient
) -> None:
    config = RQueryConfig(redis=redis_url, popTimeout=0.5, serviceNamespace="demo:rq")
    svc, hooks = build(config)
    task = asyncio.create_task(run_service(svc, config, hooks, asyncio.Event()))
    await ask(aredis, {"reply": "r:ok", "commands": [{"command": "get k"}]}, "r:ok")
    await ask(aredis, {"reply": "r:no", "commands": [{"command": "flushall"}]}, "r:no")
    await aredis.delete(instance_key("demo:rq", svc_id(svc)))
    await asyncio.wait_for(task, 10)
    metrics = await read_metrics(aredis, "demo:rq")
    assert metrics["answered"]["count"] == 2 and metrics["refused"]["count"] == 1
    assert await aredis.llen(ids_key("demo:rq")) == 0
    assert await aredis.exists(registry_key(derived("rquery:in", "pending"))) == 0


@pytest.mark.parametrize(
    ("commands", "code"),
    [
        ([{"command": "flushall"}], "disallowed-command"),
        ([{"command": "config set maxmemory 1"}], "disallowed-command"),
        ([{"command": "eval 'return 1' 0"}], "disallowed-command"),
        ([{"command": "get $missing"}], "unknown-name"),
        ([{"command": 7}], "invalid"),
    ],
)
async def test_bad_requests_get_an_error_reply_and_the_service_goes_on(
    service: RQueryService, aredis: AsyncClient, commands: list[Any], code: str
) -> None:
    reply = await ask(aredis, {"id": 2, "reply": "reply:2", "commands": commands}, "reply:2")
    assert reply["id"] == 2
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]
    assert await aredis.hget("article:12345", "section") == b"news"  # nothing was flushed
    again = await ask(aredis, {"reply": "reply:3", **SEED}, "reply:3")
    assert again == {"values": {"section": "news", "label": "News"}}


async def test_requests_without_a_usable_reply_list_go_to_the_errors_list(
    service: RQueryService, aredis: AsyncClient
) -> None:
    errors = derived("rquery:in", "errors")
    malformed = await ask(aredis, b"{oops", errors)
    assert malformed["error"]["code"] == "malformed"
    assert malformed["request"] == "{oops"
    no_reply = await ask(aredis, {"id": "x", **SEED}, errors)
    assert no_reply["id"] == "x"
    assert "'reply' must name a list" in no_reply["error"]["message"]
    outside = await ask(aredis, {"reply": "elsewhere", **SEED}, errors)
    assert outside["error"]["code"] == "disallowed-key"
    assert await aredis.exists("elsewhere") == 0
    ok = await ask(aredis, {"reply": "reply:4", **SEED}, "reply:4")
    assert ok["values"]["label"] == "News"


async def test_a_dead_instances_pending_requests_are_answered(
    redis_url: str, aredis: AsyncClient
) -> None:
    # The state a SIGKILL leaves: a request parked in a pending list, its owner's hash expired.
    await aredis.set("k", "v")
    request = json.dumps({"reply": "reply:dead", "commands": [{"command": "get k", "save": "k"}]})
    base = derived("rquery:in", "pending")
    await aredis.lpush(pending_key(base, "41"), request)
    await aredis.hset(registry_key(base), "41", instance_key("demo:rq", 41))
    config = RQueryConfig(redis=redis_url, popTimeout=0.5, serviceNamespace="demo:rq")
    svc, hooks = build(config)
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(svc, config, hooks, stopping))
    popped = await aredis.brpop(["reply:dead"], 10)  # type: ignore[arg-type]
    stopping.set()
    await asyncio.wait_for(task, 10)
    assert popped is not None and json.loads(popped[1]) == {"values": {"k": "v"}}
    assert await aredis.exists(pending_key(base, "41")) == 0
    assert await aredis.hkeys(dead_key(base)) == [b"41"]  # listed as dead, for a grace


def test_a_sigkilled_service_loses_no_request(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("k", "v")
    total = 300
    for i in range(total):
        request = {"id": i, "reply": "replies", "commands": [{"command": "get k", "save": "k"}]}
        client.lpush("rquery:in", json.dumps(request))
    sets = ("popTimeout=0.5", "serviceExpire=2", "serviceRenew=0.5")
    args = ("rquery-service", "--redis", redis_url, *(a for s in sets for a in ("--set", s)))
    first = spawn(*args, log=tmp_path / "first.log")
    wait_for(lambda: client.llen("replies") >= 20, timeout=60)
    [ident] = client.hkeys("{rquery:in}:pending:instances")  # the first's instance id
    pending = pending_key(derived("rquery:in", "pending"), ident.decode())
    killed = False
    while not killed:  # killed with a request in hand
        wait_for(lambda: client.llen(pending), timeout=60)
        killed = kill_holding(first, lambda: client.llen(pending))
    held = client.llen(pending)
    second = spawn(*args, log=tmp_path / "second.log")
    try:
        answered = lambda: {json.loads(r)["id"] for r in client.lrange("replies", 0, -1)}  # noqa: E731
        wait_for(lambda: len(answered()) == total, timeout=60)
        # The second may answer everything before the first's lifecycle hash expires; its
        # pending entry is cleaned up after that (serviceExpire=2 s), so wait for it.
        instances = "{rquery:in}:pending:instances"
        wait_for(lambda: client.hlen(instances) == 1, timeout=30)
    finally:
        assert stop(second) == 0, (tmp_path / "second.log").read_text()
    replies = [json.loads(r) for r in client.lrange("replies", 0, -1)]
    assert all(r["values"] == {"k": "v"} for r in replies)
    assert client.llen("rquery:in") == 0
    assert not client.keys("{rquery:in}:pending:*")
    recovered = f"recovered={held} from dead instance={ident.decode()}"
    assert held and recovered in (tmp_path / "second.log").read_text()
