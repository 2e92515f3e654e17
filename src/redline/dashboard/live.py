"""Live updates: one sampler per dashboard, one Server-Sent Events stream per open page.

The sampler reads every queue's counts and its new job events (the jobs event stream), the
services' replicas and the metrics totals every `sampleEvery` seconds and publishes the
sample; each page's stream (``GET /live``) sends the history it keeps on connect (event
``history``), then every new sample (event ``sample``). When Redis cannot be read the sample
says so (``ok: false``) and the page shows that it is reconnecting; the browser's EventSource
reconnects by itself when the stream drops.

A sample's ``digest`` holds a short fingerprint per part of the system (``queue:<name>``,
``services``, ``metrics``, ``busy``: what jobs workers run); a page re-reads its own lists
only when a part it shows changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from redline.connection import AsyncClient, text
from redline.dashboard import audit, busy, data, services
from redline.dashboard.settings import DashboardConfig
from redline.jobs.document import job_keys
from redline.jobs.events import JobEvent

__all__ = ["Live", "live_stream", "sampler"]

HOUR_EVERY = 60.0  # seconds between the samples the hour's charts keep
KEEPALIVE = 15.0  # seconds between comments on a quiet stream (proxies close idle ones)


def _digest(value: Any) -> str:
    return hashlib.blake2s(json.dumps(value, sort_keys=True).encode(), digest_size=6).hexdigest()


FEED = 20  # job events the overview lists (newest first)


async def new_events(client: AsyncClient, names: list[str], seen: dict[str, str]) -> list[JobEvent]:
    """The newest `FEED` events of each queue's job event stream after the id in `seen`
    (updated; a queue seen for the first time gives its newest `FEED`)."""
    found: list[JobEvent] = []
    for name in names:
        key, after = job_keys(name).events, seen.get(name)
        newest: list[Any] = await client.xrevrange(  # type: ignore[assignment]
            key, "+", f"({after}" if after else "-", count=FEED
        )
        if newest:
            seen[name] = text(newest[0][0])
        for entry, fields in newest:  # newest first, also within a packed entry
            found += reversed(JobEvent.in_entry(name, entry, fields))
    return sorted(found, key=lambda e: e.time, reverse=True)[:FEED]


class Live:
    """The latest sample, the recent ones (for the chart), one a minute over the last hour
    (throughput and latency), and the waiters for the next."""

    def __init__(self, history: int) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=history)
        self.hour: deque[dict[str, Any]] = deque(maxlen=int(3600 / HOUR_EVERY) + 1)
        self.latest: dict[str, Any] | None = None
        self.events: deque[JobEvent] = deque(maxlen=FEED)  # the newest job events, first
        self.seen: dict[str, str] = {}  # each queue's newest event id read
        # Set (and replaced) at each publish and at the stop. An event and no lock: a page's
        # stream is cancelled over and over when its page goes (anyio's cancel scope), and a
        # condition's lock, re-acquired inside a cancelled wait, could be left held or released
        # twice, which stopped the sampler and cut other pages' streams mid-chunk.
        self.changed = asyncio.Event()
        self.stopping = asyncio.Event()

    async def publish(self, sample: dict[str, Any]) -> None:
        self.latest = sample
        if sample["ok"]:
            self.samples.append(sample)
            if not self.hour or sample["t"] - self.hour[-1]["t"] >= HOUR_EVERY:
                self.hour.append(sample)
        self.wake()

    def stop(self) -> None:
        """End the sampler and every page's stream: each stream's response completes (the
        page's EventSource reconnects, to this dashboard or the next)."""
        self.stopping.set()
        self.wake()

    def wake(self) -> None:
        """Every stream waiting in `newer` looks again (a sample was published, or the stop)."""
        self.changed.set()
        self.changed = asyncio.Event()

    def last_hour(self) -> list[dict[str, Any]]:
        """One sample a minute over the last hour, and the latest (the minute so far)."""
        hour = list(self.hour)
        if self.samples and (not hour or self.samples[-1]["t"] > hour[-1]["t"]):
            hour.append(self.samples[-1])
        return hour

    async def newer(self, seen: float, wait: float) -> dict[str, Any] | None:
        """The latest sample once it is newer than `seen` (None after `wait` seconds)."""

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while not self.stopping.is_set() and (
                    self.latest is None or self.latest["t"] <= seen
                ):
                    await self.changed.wait()
        latest = self.latest
        return latest if latest is not None and latest["t"] > seen else None


async def take_sample(client: AsyncClient, config: DashboardConfig, live: Live) -> dict[str, Any]:
    """Every queue's counts, each service's live and desired replicas, the metrics totals,
    and the job events since the last sample (also kept in `live.events`). Its ``t`` is when
    the reads began: whatever it shows is at least that new (a page rendered before ``t``
    may take its counts)."""
    began = time.time()
    names = await data.list_queues(client, config.queues)
    rows = await data.queue_rows(client, names)
    events = await new_events(client, names, live.seen)
    live.events.extendleft(reversed(events))
    replicas = await services.replica_counts(client, config.namespaces)
    workers = await busy.workers(client)
    metrics = {
        m.key: [m.count, m.sum] for m in await data.metrics_hashes(client, config.namespaces)
    }
    queues = [{**r.__dict__, "last_event": live.seen.get(r.name, "")} for r in rows]
    digest = {f"queue:{q['name']}": _digest(q) for q in queues}
    digest |= {"services": _digest(replicas), "metrics": _digest(metrics)}
    digest["busy"] = _digest([(w.instance.key, w.running, w.jobs_digest) for w in workers])
    digest["audit"] = await audit.newest(client)  # an action taken here or by another dashboard
    return {
        "t": began,
        "ok": True,
        "queues": queues,
        "services": replicas,
        "metrics": metrics,
        "events": [e.__dict__ for e in events],
        "digest": digest,
    }


async def sampler(live: Live, client: AsyncClient, config: DashboardConfig) -> None:
    """Sample until `live.stopping`; a failed read publishes ``ok: false`` with the error."""
    while not live.stopping.is_set():
        try:
            sample = await take_sample(client, config, live)
        except Exception as error:  # any failure is shown, and retried
            sample = {"t": time.time(), "ok": False, "error": f"{type(error).__name__}: {error}"}
        await live.publish(sample)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(live.stopping.wait(), config.sample_every)


def _event(name: str, body: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


async def _events(live: Live, every: float) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    yield _event("history", {"every": every, "samples": list(live.samples)})
    seen = live.samples[-1]["t"] if live.samples else 0.0
    while not live.stopping.is_set():
        sample = await live.newer(seen, KEEPALIVE)
        if sample is None:
            yield ": still here\n\n"
            continue
        seen = sample["t"]
        yield _event("sample", sample)


async def live_stream(request: Request) -> Response:
    """GET /live: the Server-Sent Events stream of one open page."""
    live: Live = request.app.state.live
    config: DashboardConfig = request.app.state.config
    return StreamingResponse(
        _events(live, config.sample_every),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
