"""Django: settings, a client per process, ``enqueue_on_commit`` and ``manage.py redline_worker``
(``pip install redline[django]``).

::

    # settings.py
    INSTALLED_APPS = [..., "redline.integrations.django"]
    REDLINE = {"url": "redis://127.0.0.1:6379/0", "queues": ["orders"]}

    # shop/views.py
    from django.db import transaction
    from redline.integrations.django import enqueue_on_commit
    from shop.tasks import confirm_order

    def checkout(request):
        with transaction.atomic():
            order = Order.objects.create(...)
            enqueue_on_commit(confirm_order, order.id)   # pushed only if this commits
        ...

    $ python manage.py redline_worker          # runs the tasks of every app's tasks.py

``REDLINE`` keys: ``url`` (default ``redis://127.0.0.1:6379/0``), ``queues`` (what
``redline_worker`` serves; default: the queues of its tasks), ``tasks`` (modules of ``@task``
functions; default: the ``tasks`` module of each installed app that has one), ``concurrency``
(default 16). Unknown keys are refused at start-up.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import transaction

from redline.connection import SyncClient, connect_sync
from redline.integrations.django.conf import RedlineSettings, redline_settings
from redline.jobs import JobDocument, Task, enqueue_sync

__all__ = ["RedlineSettings", "client", "enqueue", "enqueue_on_commit", "redline_settings"]

_clients: dict[int, SyncClient] = {}  # by process id: a forked process makes its own


def client() -> SyncClient:
    """This process's client on ``REDLINE["url"]`` (made on first use; thread-safe)."""
    pid = os.getpid()
    found = _clients.get(pid)
    if found is None:
        _clients.clear()  # a parent's client must not be used after a fork
        found = _clients[pid] = connect_sync(redline_settings().url)
    return found


def enqueue(task: Task[..., Any], /, *args: Any, **kwargs: Any) -> str | None:
    """Enqueue a run of `task` now (`redline.jobs.enqueue_sync`); returns the job id, None when
    a unique job with its key is still pending."""
    return enqueue_sync(client(), task, *args, **kwargs)


def enqueue_on_commit(
    task: Task[..., Any], /, *args: Any, using: str | None = None, **kwargs: Any
) -> None:
    """Enqueue a run of `task` when the current transaction of database `using` commits;
    nothing if it rolls back. Outside a transaction (autocommit) it is enqueued at once.

    The arguments are checked now (JobSerializationError names one that is not JSON), so that
    a mistake shows at the call, not in the commit."""
    JobDocument(task.name, args, kwargs, task.queue).encode()
    transaction.on_commit(lambda: enqueue(task, *args, **kwargs), using=using)
