"""`redline status` lists each job priority in use under its queue, with its own counts."""

from __future__ import annotations

from redline.cli.status import snapshot
from redline.connection import AsyncClient
from redline.jobs import Task, enqueue_many


async def test_status_shows_a_row_per_priority_in_use(aredis: AsyncClient) -> None:
    task = Task.ref("app.mail", queue="mail")
    await enqueue_many(aredis, task, [((n,), {}) for n in range(3)])
    await enqueue_many(aredis, task.options(priority=7), [((n,), {}) for n in range(2)])
    snap = await snapshot(aredis, ("mail",))
    assert list(snap.queues) == ["mail", "{mail}:priority:7"]
    assert snap.queues["mail"] == (3, 0, 0) and snap.queues["{mail}:priority:7"] == (2, 0, 0)
