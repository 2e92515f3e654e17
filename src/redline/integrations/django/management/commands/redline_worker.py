"""``manage.py redline_worker``: run the project's jobs (the ``redline worker`` of Django)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from redline.cli.worker import WorkerConfig, run_worker
from redline.errors import RedlineError
from redline.integrations.django.conf import redline_settings
from redline.jobs import Tasks, load_tasks


def task_modules(given: list[str] | None) -> list[str]:
    """``REDLINE["tasks"]``, else the ``tasks`` module of each installed app that has one."""
    if given is not None:
        return given
    found = [f"{app.name}.tasks" for app in apps.get_app_configs()]
    return [name for name in found if importlib.util.find_spec(name) is not None]


def project_tasks(modules: list[str]) -> Tasks:
    tasks = Tasks()
    for module in modules:
        for item in load_tasks(module).values():
            tasks.add(item)
    return tasks


class Command(BaseCommand):
    help = (
        "Run the jobs of the project's @task functions (REDLINE['tasks'], else each app's "
        "tasks.py) until SIGTERM/Ctrl-C; in-flight jobs then get 10 s to finish, the rest go "
        "back to their queue. Settings: REDLINE = {'url': ..., 'queues': [...], ...}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", "-q", action="append", dest="queues", help="repeatable")
        parser.add_argument("--concurrency", "-c", type=int, help="jobs run at once")

    def handle(self, *args: Any, **options: Any) -> None:
        conf = redline_settings()
        try:
            tasks = project_tasks(task_modules(conf.tasks))
            config = WorkerConfig.model_validate(
                {
                    "redis": conf.url,
                    "queues": options["queues"] or conf.queues,
                    "concurrency": options["concurrency"] or conf.concurrency,
                }
            )
        except (RedlineError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if not len(tasks):
            raise CommandError("no tasks: add tasks.py to an app, or set REDLINE['tasks']")
        self.stdout.write(f"redline_worker: {len(tasks)} tasks on {config.queues or tasks.queues}")
        self.stdout.flush()
        run_worker(tasks, config)
