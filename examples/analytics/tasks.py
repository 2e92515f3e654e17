"""The processing side: a worker task that writes each hit into SQLite.

``redline worker examples.analytics.tasks`` runs it; ANALYTICS_DB names the database file.
Replace this module (another database, another schema) and restart the worker: the endpoint
keeps accepting hits meanwhile, and they wait on the queue.
"""

from __future__ import annotations

import os
import sqlite3

from redline.jobs import task

SCHEMA = """CREATE TABLE IF NOT EXISTS hits (
    id INTEGER PRIMARY KEY, job TEXT UNIQUE, ip TEXT, user_agent TEXT, at REAL, url TEXT)"""


def database() -> sqlite3.Connection:
    db = sqlite3.connect(os.environ.get("ANALYTICS_DB", "analytics.sqlite3"), timeout=30)
    db.execute(SCHEMA)
    return db


@task(queue="hits", retries=5, backoff=0.5)
def record_hit(ip: str, user_agent: str, at: float, url: str) -> None:
    """Insert one hit. At-least-once delivery can run a job twice: (ip, at, url) dedupes it."""
    with database() as db:
        db.execute(
            "INSERT OR IGNORE INTO hits (job, ip, user_agent, at, url) VALUES (?, ?, ?, ?, ?)",
            (f"{ip}|{at!r}|{url}", ip, user_agent, at, url),
        )
