"""The ``REDLINE`` setting, validated once (unknown keys and bad values refused, each named)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["RedlineSettings", "redline_settings"]


class RedlineSettings(BaseModel):
    """``settings.REDLINE``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field("redis://127.0.0.1:6379/0", description="the Redis URL jobs go through")
    queues: list[str] = Field(default_factory=list, description="redline_worker's queues")
    tasks: list[str] | None = Field(None, description="task modules (default: apps' tasks)")
    concurrency: int = Field(16, gt=0, description="jobs redline_worker runs at once")

    @classmethod
    def parse(cls, value: object) -> RedlineSettings:
        """`value` validated; ImproperlyConfigured lists every problem."""
        try:
            return cls.model_validate(value if value is not None else {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'REDLINE'}: {e['msg']}" for e in exc.errors()
            )
            raise ImproperlyConfigured(
                f"settings.REDLINE: {problems} (keys: url, queues, tasks, concurrency)"
            ) from None


@cache
def redline_settings() -> RedlineSettings:
    """The project's ``REDLINE`` setting (read once per process)."""
    return RedlineSettings.parse(getattr(settings, "REDLINE", None))
