"""Property test: random operations on a real queue and on a small in-memory model agree.

Time is virtual: every operation happens STEP later than the one before, and `advance` adds
more. The server keeps absolute times (lease deadlines, due times, delivery times), so moving
virtual time forward is shifting every stored time back by the same amount — the production
scripts run unchanged, on the server's real clock. Times are chosen so that two events never
tie unless they come from one script call (where both sides order by id): operations happen at
multiples of STEP, leases end at +LEASE (half a step off) and delays have distinct remainders.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from redline.connection import connect_sync
from redline.queue import Delivery, QueueKeys, SyncReliableQueue
from tests.servers import ServerProcess

KEY = "q"
K = QueueKeys.of(KEY)
STEP, LEASE, MAX = 100_000, 550_000, 3  # ms, ms, deliveries
DELAYS = (0, 25_000, 150_000, 375_000)  # remainders mod STEP: 0, 25, 50, 75 s
RECOVERED = 100  # expired leases one queue_pop call gives back, at least
SLACK = 20_000  # ms of real time an example may take before timings could be misread
PAYLOADS = st.sampled_from([b"a", b"b", b"", b"\xff\x00"])

SHIFT = """
for i = 1, 3 do
  local page = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  for j = 1, #page, 2 do redis.call('ZADD', KEYS[i], tonumber(page[j + 1]) - ARGV[1], page[j]) end
end
local since = redis.call('HGETALL', KEYS[4])
for j = 1, #since, 2 do redis.call('HSET', KEYS[4], since[j], tonumber(since[j + 1]) - ARGV[1]) end
"""


@dataclasses.dataclass
class Message:
    payload: bytes
    state: str = "waiting"  # inflight, delayed, dead
    deliveries: int = 0
    score: int = 0  # virtual ms: lease deadline, due time or died at
    reason: str = ""


class Model:
    """The ReliableQueue's specification for one key, on a virtual clock."""

    def __init__(self) -> None:
        self.now = 0
        self.seq = 0
        self.waiting: deque[bytes] = deque()
        # The ids push gave, by position (ids follow position, see docs/queue.md "Ids"): the
        # message waiting[i] is at position taken + i + 1; a raw LPUSH has no recorded id.
        self.taken = 0
        self.recorded: dict[int, str] = {}
        self.messages: dict[str, Message] = {}
        # In-flight ids in the server's order. One pop leases recovered and fresh messages with
        # the same virtual deadline, while the real deadlines of pops that span a millisecond
        # tick differ; the model takes that order from the server (seen before each operation).
        self.server_inflight: list[str] = []

    def ids(self, state: str) -> list[str]:
        """Ids in `state`, in the server's order (score, then id as a string)."""
        rank = {i: n for n, i in enumerate(self.server_inflight)} if state == "inflight" else {}
        found = [(m.score, rank.get(i, 0), i) for i, m in self.messages.items() if m.state == state]
        return [i for *_, i in sorted(found)]

    def push(self, payloads: list[bytes]) -> list[str]:
        ids = [str(self.seq + n) for n in range(1, len(payloads) + 1)]
        self.seq += len(payloads)
        base = self.taken + len(self.waiting)
        self.waiting.extend(payloads)
        for n, mid in enumerate(ids, 1):
            self.recorded[base + n] = mid
        return ids

    def waiting_ids(self) -> list[tuple[str, bytes]]:
        return [(self.recorded.get(self.taken + n, ""), p) for n, p in enumerate(self.waiting, 1)]

    def pop(self, count: int, ack: list[Delivery]) -> tuple[list[Delivery], list[str]]:
        acked = self.ack(ack)
        if count:  # expired leases go back first, up to max(count, RECOVERED) per pop
            self.recover(max(count, RECOVERED), None)
        return self._take(count), acked

    def _in(self, state: str) -> list[Message]:
        return [m for m in self.messages.values() if m.state == state]

    def _take(self, count: int) -> list[Delivery]:
        due = [i for i in self.ids("delayed") if self.messages[i].score <= self.now][:count]
        taken = [(i, self.messages[i].payload) for i in due]
        fresh = [self.waiting.popleft() for _ in range(min(count - len(due), len(self.waiting)))]
        for payload in fresh:
            self.taken += 1
            if self.taken in self.recorded:
                mid = self.recorded.pop(self.taken)
            else:
                self.seq += 1
                mid = str(self.seq)
            self.messages[mid] = Message(payload)
            taken.append((mid, payload))
        for mid, _ in taken:
            m = self.messages[mid]
            m.state, m.deliveries, m.score = "inflight", m.deliveries + 1, self.now + LEASE
        return [Delivery(KEY, i, p, self.messages[i].deliveries) for i, p in taken]

    def held(self, d: Delivery, states: tuple[str, ...] = ("inflight",)) -> Message | None:
        m = self.messages.get(d.id)
        return m if m and m.deliveries == d.deliveries and m.state in states else None

    def ack(self, deliveries: list[Delivery]) -> list[str]:
        acked = []
        for d in deliveries:
            if self.held(d, ("inflight", "delayed")):
                del self.messages[d.id]
                acked.append(d.id)
        return acked

    def give_back(self, d: Delivery, delay: int, reason: str, dead: bool) -> bool:
        m = self.held(d)
        if m is None:
            return False
        if not dead and m.deliveries >= MAX:
            reason, dead = f"max deliveries ({MAX}) reached: {reason}", True
        m.reason = reason or m.reason
        m.state, m.score = ("dead", self.now) if dead else ("delayed", self.now + delay)
        return True

    def extend(self, d: Delivery) -> bool:
        m = self.held(d)
        if m:
            m.score = self.now + LEASE
        return m is not None

    def recover(self, count: int, elapsed: int | None) -> int:
        ids = self.ids("inflight")
        if elapsed is None:
            ids = [i for i in ids if self.messages[i].score <= self.now]
        for mid in ids[:count]:
            m = self.messages[mid]
            if m.deliveries >= MAX:
                m.state, m.reason = "dead", f"max deliveries ({MAX}) reached: lease expired"
            else:
                m.state = "delayed"
            m.score = self.now
        return len(ids[:count])

    def settle_dead(self, ids: list[str], requeue: bool) -> int:
        done = 0
        for mid in dict.fromkeys(ids):
            m = self.messages.get(mid)
            if m and m.state == "dead":
                done += 1
                if requeue:
                    m.state, m.score, m.deliveries, m.reason = "delayed", self.now, 0, ""
                else:
                    del self.messages[mid]
        return done

    def purge(self) -> int:
        dropped = len(self.waiting) + len(self.ids("delayed"))
        self.waiting.clear()
        self.recorded.clear()
        for mid in self.ids("delayed"):
            del self.messages[mid]
        return dropped


@pytest.fixture(scope="module")
def model_server() -> Iterator[ServerProcess]:
    srv = ServerProcess().start()
    yield srv
    srv.close()


class QueueMachine(RuleBasedStateMachine):
    server: ServerProcess

    @initialize()
    def start(self) -> None:
        self.client = connect_sync(self.server.url)
        self.client.flushdb()
        self.queue = SyncReliableQueue(self.client, lease=LEASE / 1000, max_deliveries=MAX)
        self.raw = redis.Redis(port=self.server.port)
        self.model = Model()
        self.history: list[Delivery] = []

    def teardown(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
            self.raw.close()

    def tick(self, ms: int = STEP) -> None:
        self.model.server_inflight = [x.decode() for x in self.raw.zrange(K.inflight, 0, -1)]
        self.model.now += ms
        keys = [K.inflight, K.delayed, K.dead, K.since]
        self.raw.eval(SHIFT, len(keys), *keys, ms)

    @rule(payloads=st.lists(PAYLOADS, min_size=1, max_size=3))
    def push(self, payloads: list[bytes]) -> None:
        self.tick()
        assert self.queue.push(KEY, *payloads) == self.model.push(payloads)

    @rule(payload=PAYLOADS)
    def raw_push(self, payload: bytes) -> None:
        self.tick()
        self.raw.lpush(KEY, payload)
        self.model.waiting.append(payload)

    @rule(count=st.integers(1, 4), data=st.data())
    def pop(self, count: int, data: st.DataObject) -> None:
        self.tick()
        ack = data.draw(st.lists(st.sampled_from(self.history), max_size=2)) if self.history else []
        got = self.queue.pop(KEY, count=count, ack=ack)
        expected, _ = self.model.pop(count, ack)
        assert got == expected
        self.history += got

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        self.tick()
        chosen = data.draw(st.lists(st.sampled_from(self.history), min_size=1, max_size=3))
        assert self.queue.ack(*chosen) == self.model.ack(chosen)

    @precondition(lambda self: self.history)
    @rule(data=st.data(), delay=st.sampled_from(DELAYS), reason=st.sampled_from(["", "boom"]))
    def nack(self, data: st.DataObject, delay: int, reason: str) -> None:
        self.tick()
        d = data.draw(st.sampled_from(self.history))
        expected = self.model.give_back(d, delay, reason, dead=False)
        assert self.queue.nack(d, delay / 1000, reason) == expected

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        self.tick()
        d = data.draw(st.sampled_from(self.history))
        assert self.queue.dead_letter(d, "bad") == self.model.give_back(d, 0, "bad", dead=True)

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        self.tick()
        d = data.draw(st.sampled_from(self.history))
        assert (self.queue.extend(d) == [d]) == self.model.extend(d)

    @rule(count=st.integers(1, 4), elapsed=st.sampled_from([None, 0]))
    def recover(self, count: int, elapsed: int | None) -> None:
        self.tick()
        assert self.queue.recover(KEY, count, elapsed) == self.model.recover(count, elapsed)

    @rule(data=st.data(), requeue=st.booleans(), everything=st.booleans())
    def settle_dead(self, data: st.DataObject, requeue: bool, everything: bool) -> None:
        self.tick()
        act = self.queue.requeue if requeue else self.queue.delete
        if everything:
            expected = self.model.settle_dead(self.model.ids("dead"), requeue)
            assert act(KEY, everything=True) == expected
            return
        known = sorted(self.model.messages) or ["1"]
        ids = data.draw(st.lists(st.sampled_from(known), min_size=1, max_size=2))
        assert act(KEY, *ids) == self.model.settle_dead(ids, requeue)

    @rule()
    def purge(self) -> None:
        self.tick()
        assert self.queue.purge(KEY) == self.model.purge()

    @rule(steps=st.integers(1, 8))
    def advance(self, steps: int) -> None:
        self.tick(steps * STEP)

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        m = self.model
        info = self.queue.info(KEY)
        expired = sum(1 for x in m.messages.values() if x.state == "inflight" and x.score <= m.now)
        counts = (len(m.waiting), len(m.ids("inflight")), len(m.ids("delayed")), len(m.ids("dead")))
        assert (info.waiting, info.inflight, info.delayed, info.dead, info.expired) == (
            *counts,
            expired,
        )
        waiting = self.queue.inspect(KEY, count=100)
        assert [(x.id, x.payload) for x in waiting] == m.waiting_ids()
        views = {
            "inflight": self.queue.inspect(KEY, pending=True, count=100),
            "delayed": self.queue.inspect(KEY, delayed=True, count=100),
            "dead": self.queue.dead(KEY, count=100),
        }
        for state, seen in views.items():
            if state == "inflight":  # ties in deadline: any order (see Model.server_inflight)
                assert sorted(x.id for x in seen) == sorted(m.ids(state))
                scores = [m.messages[x.id].score for x in seen]
                assert scores == sorted(scores)
            else:
                assert [x.id for x in seen] == m.ids(state)
            for x in seen:
                want = m.messages[x.id]
                assert (x.payload, x.deliveries, x.reason) == (
                    want.payload,
                    want.deliveries,
                    want.reason,
                )
                if x.remaining is not None:  # lease end or due time, on the server's clock
                    assert abs(x.remaining * 1000 - (want.score - m.now)) < SLACK


def test_the_queue_behaves_like_its_model(model_server: ServerProcess) -> None:
    QueueMachine.server = model_server
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
