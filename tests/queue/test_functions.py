"""The queue as a Redis Functions library (FCALL), and the EVALSHA fallback where there is none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from bench._calls import PythonCalls
from redline.connection import connect, connect_sync
from redline.queue import QueueKeys, ReliableQueue, SyncReliableQueue
from redline.queue.library import LIBRARY
from redline.scripting import scripts
from redline.scripting.functions import Library, function_name
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def no_functions() -> Iterator[ServerProcess]:
    """A real server whose FUNCTION command is renamed away, as on a server older than Redis 7."""
    srv = ServerProcess(config={"rename-command": "FUNCTION nofunctions"}).start()
    yield srv
    srv.close()


def test_the_library_registers_one_function_per_script(redis_url: str) -> None:
    client = connect_sync(redis_url)
    queue = SyncReliableQueue(client)
    queue.push("q", b"x")
    library = client.function_list(library="redline_queue")[0]
    functions = {f[1]: f[5] for f in library[library.index(b"functions") + 1]}
    assert set(functions) == {function_name(s).encode() for s in LIBRARY.scripts}
    assert functions[b"redline_queue_info"] == [b"no-writes"]
    assert LIBRARY.uses_functions(client) is True


def test_included_parts_are_defined_once_where_they_can_be(redis_url: str) -> None:
    """The queue's helpers (`_batch.lua`, `_retention.lua`) sit at the library's top level,
    once; a part that reads KEYS or ARGV (each call's) stays inline in each function that
    includes it, and the library still loads."""
    source = LIBRARY.source
    assert source.count("local function batch_load(") == 1
    assert source.index("local function batch_load(") < source.index("register_function")
    assert source.count("local function retention_trim(") == 1
    jobs = Library("t", ["queue_pop", "job_admit", "job_slot_release"]).source
    assert jobs.count("local function batch_load(") == 1
    assert jobs.count("local function slots_release(") == 1  # _job_slots.lua: keys passed in
    assert jobs.index("local function slots_release(") < jobs.index("register_function")
    client = connect_sync(redis_url)  # (job_admit is redline_jobs' already: not loaded here)
    slots = Library("t", ["job_slot_release"]).source
    assert client.function_load(slots, replace=True) == b"t"
    client.function_delete("t")


def test_a_part_that_reads_keys_stays_inline_in_each_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A part that reads KEYS (each call's) is written into every function that includes it."""
    texts = {
        "_t_part": "local function t_first() return KEYS[1] end\n",
        "t_a": "-- include _t_part.lua\nreturn t_first()\n",
        "t_b": "-- include _t_part.lua\n-- include _batch.lua\nreturn t_first()\n",
    }
    real = scripts._lua_text
    monkeypatch.setattr(scripts, "_lua_text", lambda name: texts.get(name) or real(name))
    source = Library("t", ["t_a", "t_b"]).source
    assert source.count("local function t_first(") == 2
    assert source.index("local function t_first(") > source.index("'redline_t_a'")
    assert source.count("local function batch_load(") == 1


def test_a_pop_makes_no_closure_per_call() -> None:
    """queue_pop's helpers (`_pop.lua`) sit at the library's top level with `_batch.lua`'s: its
    function defines none of its own (a closure made per call cost ~2,000 instructions)."""
    source = LIBRARY.source
    start = source.index("'redline_queue_pop'")
    body = source[start : source.index("register_function", start)]
    assert "local function" not in body
    for helper in ("pop_ack", "ack_whole", "known_ids", "recover_expired", "wait_ms"):
        assert source.count(f"local function {helper}(") == 1
        assert source.index(f"local function {helper}(") < source.index("register_function")


def test_fcall_from_any_client_with_the_documented_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    SyncReliableQueue(connect_sync(redis_url)).info("warm")  # loads the library
    k = QueueKeys.of("q")
    pop_keys = [getattr(k, r) for r in ("waiting", "claimed", "ids", "seq", "inflight")]
    pop_keys += [getattr(k, r) for r in ("delayed", "payloads", "deliveries", "since", "reasons")]
    pop_keys += [k.dead, k.retention, k.batches, k.batched]
    assert client.fcall("redline_queue_push", 4, "q", k.claimed, k.ids, k.seq, "hello") == [b"1"]
    reply = client.fcall("redline_queue_pop", 14, *pop_keys, 1, 30000, 10)
    assert reply[2:] == [0, b"1", b"hello", 1]
    assert client.fcall("redline_queue_pop", 14, *pop_keys, 0, 0, 10, "1", 1)[2:] == [1, b"1"]
    info_keys = [k.waiting, k.claimed, k.inflight, k.delayed, k.dead, k.retention]
    info_keys += [k.batches]
    assert client.fcall_ro("redline_queue_info", 7, *info_keys)[:7] == [0, 0, 0, 0, 0, 0, 0]


def test_a_flushed_library_is_loaded_again(redis_url: str) -> None:
    client = connect_sync(redis_url)
    queue = SyncReliableQueue(client)
    queue.push("q", b"a")
    client.function_flush()
    assert queue.push("q", b"b") == ["2"]
    assert [d.payload for d in queue.pop("q", count=2)] == [b"a", b"b"]


async def test_without_functions_scripts_run_through_evalsha(no_functions: ServerProcess) -> None:
    client = connect(no_functions.url)
    await client.flushdb()
    queue = ReliableQueue(client)
    assert await queue.push("q", b"a", b"b") == ["1", "2"]
    batch = await queue.pop("q", count=2)
    assert await queue.ack(*batch) == ["1", "2"]
    assert LIBRARY.uses_functions(client) is False
    await client.aclose()


@pytest.mark.parametrize("use_functions", [True, False], ids=["fcall", "evalsha"])
async def test_both_ways_give_the_same_results(redis_url: str, use_functions: bool) -> None:
    client = connect(redis_url)
    queue = ReliableQueue(client, max_deliveries=2, use_functions=use_functions)
    await queue.push("q", b"a", b"b")
    first, second = await queue.pop("q", count=2)
    assert await queue.nack(second, delay=0)
    again = await queue.pop("q", count=5, ack=[first])
    assert [(d.id, d.deliveries) for d in again] == [("2", 2)]
    assert await queue.nack(again[0], delay=0, reason="boom")
    assert [(m.id, m.reason) for m in await queue.dead("q")] == [
        ("2", "max deliveries (2) reached: boom")
    ]
    assert await queue.requeue("q", everything=True) == 1
    assert (await queue.info("q")).delayed == 1
    await client.aclose()


def test_a_blocking_push_and_pop_of_one_make_few_python_calls(redis_url: str) -> None:
    """The blocking client's call path (a kept FCALL channel, its packer and socket read with
    no frame in between; payloads checked in a loop, ids made without a comprehension): a pop
    of one acking the last made 34 Python calls, a push 26 (Python 3.11)."""
    queue = SyncReliableQueue(connect_sync(redis_url))
    queue.push("q", b"a")
    held = queue.pop("q")
    queue.push("q", b"b")
    with PythonCalls() as popped:
        queue.pop("q", ack=held)
    with PythonCalls() as pushed:
        queue.push("q", b"c")
    assert popped.all <= 25 and pushed.all <= 15


def test_a_client_that_may_no_longer_load_the_library_goes_on_with_evalsha() -> None:
    """The kept FCALL channel is dropped when loading the library again fails: the calls after
    are EVALSHAs, not an FCALL and a FUNCTION LOAD refused each time."""
    srv = ServerProcess().start()
    try:
        admin = connect_sync(srv.url)
        admin.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
        client = connect_sync(f"redis://app:pw@127.0.0.1:{srv.port}/0")
        queue = SyncReliableQueue(client)
        assert queue.push("q", b"a") == ["1"]
        admin.acl_setuser("app", enabled=True, commands=["-function"])
        admin.function_flush()
        assert queue.push("q", b"b") == ["2"]
        admin.config_resetstat()
        assert queue.push("q", b"c") == ["3"]
        assert [d.payload for d in queue.pop("q", count=3)] == [b"a", b"b", b"c"]
        assert "cmdstat_fcall" not in admin.info("commandstats")
        assert LIBRARY.uses_functions(client) is False
    finally:
        srv.close()
