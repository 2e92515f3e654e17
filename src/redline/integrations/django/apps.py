"""The Django app: ``INSTALLED_APPS = [..., "redline.integrations.django"]``."""

from __future__ import annotations

from django.apps import AppConfig


class RedlineConfig(AppConfig):
    name = "redline.integrations.django"
    label = "redline"
    verbose_name = "redline"

    def ready(self) -> None:
        from redline.integrations.django.conf import redline_settings

        redline_settings()  # a bad REDLINE setting stops the project at start-up
