from __future__ import annotations

import urllib.request

from redline.connection import AsyncClient, SyncClient
from redline.runtime.metrics import (
    ERRORS_KEPT,
    Metrics,
    bucket,
    errors_key,
    metrics_key,
    read_all_sync,
    read_metrics,
    recent_errors,
    record_error,
    serve_prometheus,
)
from tests.helpers import wait_for
from tests.servers import free_port

NS = "demo:m"


def test_buckets_are_tenths_of_the_timeout() -> None:
    assert bucket(0, 1000) == "histo10"
    assert bucket(100, 1000) == "histo10"
    assert bucket(101, 1000) == "histo20"
    assert bucket(1000, 1000) == "histo100"
    assert bucket(1001, 1000) == "above"


def test_an_observation_lands_in_the_bucket_of_its_value() -> None:
    for timeout in (1, 7, 1000):
        for millis in (-3.0, 0, 0.4, 0.6, *range(1, timeout + 3), timeout + 0.5):
            metrics = Metrics(NS, timeout_ms=timeout)
            metrics.observe("done", millis)
            fields = metrics._pending["done"].fields
            assert fields == {"count": 1, "sum": round(millis), bucket(round(millis), timeout): 1}


async def test_observations_are_added_to_the_hash_on_flush(aredis: AsyncClient) -> None:
    metrics = Metrics(NS, timeout_ms=1000)
    metrics.observe("done", 50)
    metrics.observe("done", 950)
    metrics.observe("done", 2000)
    metrics.count("forwarded", 100)
    assert not await aredis.exists(metrics_key(NS, "done"))  # nothing until a flush
    await metrics.flush(aredis)
    metrics.observe("done", 10)
    await metrics.flush(aredis)
    done = await aredis.hgetall(metrics_key(NS, "done"))
    assert done == {
        b"count": b"4",
        b"sum": b"3010",
        b"max": b"2000",
        b"histo10": b"2",
        b"histo100": b"1",
        b"above": b"1",
    }
    found = await read_metrics(aredis, NS)
    assert list(found) == ["done", "forwarded"] and found["forwarded"] == {"count": 100}


async def test_values_are_set_not_added_and_read_back_as_numbers_or_text(
    aredis: AsyncClient, sredis: SyncClient
) -> None:
    metrics = Metrics(NS)
    metrics.count("retries", 2)
    metrics.set("retries", attempt=2, lastError="ConnectionError: refused")
    await metrics.flush(aredis)
    metrics.count("retries")
    metrics.set("retries", attempt=3)
    await metrics.flush(aredis)
    everything = read_all_sync(sredis, NS)
    assert everything["retries"] == {
        "count": 3,
        "attempt": 3,
        "lastError": "ConnectionError: refused",
    }
    assert (await read_metrics(aredis, NS))["retries"] == {"count": 3, "attempt": 3}


async def test_prometheus_text_endpoint(redis_url: str, aredis: AsyncClient) -> None:
    metrics = Metrics(NS, timeout_ms=1000)
    metrics.observe("done", 250)
    metrics.set("done", attempt=4, lastError="a note, left out")
    await metrics.flush(aredis)
    port = free_port()
    serve_prometheus(port, redis_url, NS, host="127.0.0.1")

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            return ""

    text = wait_for(scrape)
    assert 'redline_metric_count{name="done",namespace="demo:m"} 1.0' in text
    assert 'redline_metric_max_ms{name="done",namespace="demo:m"} 250.0' in text
    assert 'redline_metric_histogram{le="0.3",name="done",namespace="demo:m"} 1.0' in text
    assert 'redline_metric_value{field="attempt",name="done",namespace="demo:m"} 4.0' in text
    assert "a note" not in text


async def test_each_instance_counts_its_calls_timeouts_and_errors(aredis: AsyncClient) -> None:
    metrics = Metrics(NS, timeout_ms=1000)
    await aredis.hset(f"{NS}:1", "pid", 1)
    metrics.observe("done", 2000)
    metrics.count("forwarded", 9)
    metrics.count("errors", 2)
    await metrics.flush(aredis, f"{NS}:1")
    assert await aredis.hmget(f"{NS}:1", "calls", "timeouts", "errors") == [b"10", b"1", b"2"]
    await aredis.delete(f"{NS}:1")
    metrics.count("forwarded")
    await metrics.flush(aredis, f"{NS}:1")
    assert not await aredis.exists(f"{NS}:1")  # a deleted lifecycle hash is never recreated


async def test_recent_errors_are_capped_and_counted(aredis: AsyncClient) -> None:
    for n in range(ERRORS_KEPT + 5):
        await record_error(aredis, NS, f"boom {n}")
    found = await recent_errors(aredis, NS, 3)
    assert [e["msg"] for e in found] == [f"boom {n}" for n in (54, 53, 52)]
    assert await aredis.llen(errors_key(NS)) == ERRORS_KEPT
    assert await aredis.hget(metrics_key(NS, "errors"), "count") == str(ERRORS_KEPT + 5).encode()
