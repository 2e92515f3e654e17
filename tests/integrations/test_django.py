"""The Django integration: Django's own test runner on SQLite over the project in
django_project/ (enqueue_on_commit with commits, rollbacks and savepoints; settings), and
``manage.py redline_worker`` running a job that a committed transaction enqueued."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import redis

from redline.connection import connect_sync
from redline.queue import SyncReliableQueue
from tests.helpers import stop, wait_for

PROJECT = Path(__file__).resolve().parent / "django_project"


def manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_djangos_test_runner_passes_the_projects_tests(redis_url: str) -> None:
    done = manage("test", "shop", "--verbosity", "2", env={"REDLINE_URL": redis_url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 6 tests" in done.stderr and "\nOK" in done.stderr, done.stderr
    assert "a_rolled_back_transaction_enqueues_nothing" in done.stderr


def test_redline_worker_runs_what_a_committed_transaction_enqueued(
    redis_url: str, tmp_path: Path
) -> None:
    env = {"REDLINE_URL": redis_url, "SHOP_DB": str(tmp_path / "shop.sqlite3")}
    assert manage("migrate", "--run-syncdb", env=env).returncode == 0
    script = (
        "from django.db import transaction\n"
        "from redline.integrations.django import enqueue_on_commit\n"
        "from shop.models import Order\n"
        "from shop.tasks import confirm_order\n"
        "for item in ('book', 'pen'):\n"
        "    with transaction.atomic():\n"
        "        order = Order.objects.create(item=item)\n"
        "        enqueue_on_commit(confirm_order, order.id)\n"
        "try:\n"
        "    with transaction.atomic():\n"
        "        enqueue_on_commit(confirm_order, Order.objects.create(item='lost').id)\n"
        "        raise RuntimeError\n"
        "except RuntimeError:\n"
        "    pass\n"
    )
    shell = manage("shell", "-c", script, env=env)
    assert shell.returncode == 0, shell.stderr
    assert redis.Redis.from_url(redis_url).llen("shop:orders") == 2  # not the rolled back one

    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "redline_worker", "--concurrency", "2"],
            cwd=PROJECT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def confirmed() -> list[tuple[str, int]]:
        with sqlite3.connect(env["SHOP_DB"]) as db:
            rows = db.execute("SELECT item, confirmed FROM shop_order ORDER BY id").fetchall()
        return rows if all(c for _, c in rows) else []

    try:
        assert wait_for(confirmed, timeout=60) == [("book", 1), ("pen", 1)]
    finally:
        code = stop(worker, timeout=30)
    assert code == 0, log.read_text()[-3000:]
    assert "redline_worker: 1 tasks on ['shop:orders']" in log.read_text()
    with connect_sync(redis_url) as client:
        info = SyncReliableQueue(client).info("shop:orders")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)
