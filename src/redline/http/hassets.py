"""hassets: serves static files from a directory (see `redline.http.files` for the rules)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from redline.http.envelope import Request
from redline.http.files import StaticFiles
from redline.http.worker import HttpService, Outcome, WorkerConfig
from redline.runtime import Context

__all__ = ["Assets", "AssetsConfig"]


class AssetsConfig(WorkerConfig):
    """hassets' configuration: ``in`` and the ``root`` directory."""

    root: Path = Field(description="directory whose files are served")
    index: str = Field("index.html", description="file served for a directory")


class Assets(HttpService):
    name = "hassets"

    def __init__(self, config: AssetsConfig) -> None:
        super().__init__(config)
        self.files = StaticFiles(config.root, config.index)

    async def step(self, ctx: Context) -> None:
        # One stat per path for the batch this step pops and answers (a stat is a system
        # call, about as costly as the rest of a kept file's answer).
        with self.files.one_stat_per_path():
            await super().step(ctx)

    async def respond(self, ctx: Context, request: Request) -> Outcome:
        return self.files.respond(request)
