from __future__ import annotations

import json
from pathlib import Path

import redis

from redline.runtime.lifecycle import ids_key
from tests.helpers import spawn, stop, wait_for


def test_lpush_moves_each_message_to_its_one_output(
    tmp_path: Path, redis_url: str, sredis: redis.Redis
) -> None:
    config = tmp_path / "lpush.json"
    fields = {"redis": redis_url, "in": "q:in", "out": "q:out", "serviceNamespace": "q:lpush"}
    config.write_text(json.dumps({**fields, "popTimeout": 1}))
    proc = spawn("lpush", "--config", str(config), log=tmp_path / "lpush.log")
    try:
        wait_for(lambda: sredis.llen(ids_key("q:lpush")) == 1, timeout=20)
        sredis.lpush("q:in", "a", "b", "c")
        assert wait_for(lambda: sredis.llen("q:out") == 3)
    finally:
        assert stop(proc) == 0
    assert sredis.lrange("q:out", 0, -1) == [b"c", b"b", b"a"]
    assert sredis.llen("q:in") == 0 and sredis.llen(ids_key("q:lpush")) == 0
